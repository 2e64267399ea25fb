namespace BlkTap.Bench;

/// <summary>
/// Finds peer programs (fio, nbdkit, qemu-nbd, qemu-img, ...) on PATH and in the usual bin and sbin directories: the
/// one lookup the bench harness and the tests (<c>BlkTap.Testing.Peers</c>) share.
/// </summary>
/// <remarks>Threading: no state; safe from any thread.</remarks>
public static class PeerPrograms
{
    /// <summary>
    /// The full path of <paramref name="program"/>, or null when it is not installed. A name with a '/' is a path: itself
    /// when the file exists. Otherwise the first match in PATH, then /usr/local/bin, /usr/bin, /usr/sbin, /sbin, /bin.
    /// </summary>
    public static string? Find(string program)
    {
        ArgumentNullException.ThrowIfNull(program);
        if (program.Contains('/')) return File.Exists(program) ? program : null;
        var dirs = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Concat(["/usr/local/bin", "/usr/bin", "/usr/sbin", "/sbin", "/bin"]);
        foreach (var dir in dirs)
        {
            var candidate = Path.Combine(dir, program);
            if (File.Exists(candidate)) return candidate;
        }
        return null;
    }

    /// <summary>
    /// How to start another <c>blktap</c> like the one running: the program and the arguments that come before the
    /// verb. Three ways the CLI runs, three answers:
    /// <list type="bullet">
    /// <item>an apphost or a single-file, self-contained publish (<c>blktap</c>, the .NET tool's shim target or
    /// <c>publish -p:PublishSingleFile=true</c>): the process's own executable, no prefix;</item>
    /// <item><c>dotnet blktap.dll</c>: the same dotnet host and that blktap.dll;</item>
    /// <item>any other host (a test runner) with blktap.dll in the application's directory: <c>dotnet</c> and that dll.</item>
    /// </list>
    /// </summary>
    public static (string FileName, IReadOnlyList<string> Prefix) Blktap()
    {
        var self = Environment.ProcessPath;
        if (self != null && Path.GetFileName(self) == "blktap") return (self, []);
        var dll = BlktapDll();
        var host = self != null && Path.GetFileNameWithoutExtension(self) == "dotnet" ? self : Find("dotnet") ?? "dotnet";
        return (host, [dll]);
    }

    private static string BlktapDll()
    {
        var dll = Path.Combine(AppContext.BaseDirectory, "blktap.dll");
        if (File.Exists(dll)) return dll;
        throw new FileNotFoundException($"blktap.dll is not in {AppContext.BaseDirectory} and this process is not blktap itself", "blktap.dll");
    }
}
