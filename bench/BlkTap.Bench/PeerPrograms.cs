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

    /// <summary>The <c>dotnet</c> host that runs this process (for starting blktap.dll as a child).</summary>
    public static string DotnetHost =>
        Environment.ProcessPath is { } p && Path.GetFileNameWithoutExtension(p) == "dotnet" ? p : Find("dotnet") ?? "dotnet";

    /// <summary>blktap.dll in the application's directory (next to this assembly, which the CLI ships with).</summary>
    public static string BlktapDll => Path.Combine(AppContext.BaseDirectory is { Length: > 0 } b && File.Exists(Path.Combine(b, "blktap.dll"))
        ? b : Path.GetDirectoryName(typeof(PeerPrograms).Assembly.Location)!, "blktap.dll");
}
