namespace BlkTap.Testing;

/// <summary>
/// Compiles small C programs with the system gcc (against Xen's public headers from libxen-dev, and
/// linux-libc-dev's gntdev.h/evtchn.h) and runs them. Used by ABI proof tests and C frontends.
/// Thread-safe: each compile uses its own temporary directory.
/// </summary>
public static class NativeProgram
{
    /// <summary>
    /// Compiles <paramref name="cSource"/> into an executable and returns its path. The source may
    /// include &lt;xen/io/blkif.h&gt; and friends. <paramref name="extraArgs"/> go to gcc (for example "-m32").
    /// </summary>
    public static string Compile(string cSource, string name, params string[] extraArgs)
    {
        var gcc = Peers.Require("gcc");
        var dir = Directory.CreateTempSubdirectory("blktap-c-").FullName;
        var src = Path.Combine(dir, name + ".c");
        var exe = Path.Combine(dir, name);
        File.WriteAllText(src, cSource);
        var args = new List<string> { "-std=gnu11", "-O1", "-Wall", "-Werror", "-o", exe, src };
        args.InsertRange(0, extraArgs);
        Peers.Run(gcc, args).EnsureSuccess($"gcc {name}.c");
        return exe;
    }
}
