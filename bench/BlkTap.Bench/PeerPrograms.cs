namespace BlkTap.Bench;

/// <summary>Finds peer programs (fio, nbdkit, qemu-nbd, qemu-img) on PATH and the sbin directories.</summary>
internal static class PeerPrograms
{
    /// <summary>The full path of <paramref name="program"/>, or null when it is not installed.</summary>
    public static string? Find(string program)
    {
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
