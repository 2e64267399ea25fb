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
    /// A 32-bit program on a kernel that cannot exec one (no IA32 emulation) is returned as a script that runs it
    /// under qemu-i386 (Debian's qemu-user), so callers run it the same way everywhere.
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
        if (OperatingSystem.IsLinux() && extraArgs.Contains("-m32") && !KernelRunsI386.Value && Peers.Find("qemu-i386") is { } qemu)
        {
            File.Move(exe, exe + ".i386");
            File.WriteAllText(exe, $"#!/bin/sh\nexec '{qemu}' '{exe}.i386' \"$@\"\n");
            File.SetUnixFileMode(exe, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }
        return exe;
    }

    // NOTE: a kernel built without CONFIG_IA32_EMULATION (or booted with ia32_emulation=0) refuses an i386 ELF
    // with ENOEXEC. Probed once by exec'ing a 32-bit program.
    private static readonly Lazy<bool> KernelRunsI386 = new(() =>
    {
        var gcc = Peers.Find("gcc");
        if (gcc == null) return true;
        var dir = Directory.CreateTempSubdirectory("blktap-ia32-").FullName;
        try
        {
            var src = Path.Combine(dir, "p.c");
            var exe = Path.Combine(dir, "p");
            File.WriteAllText(src, "int main(void) { return 0; }\n");
            if (Peers.Run(gcc, ["-m32", "-o", exe, src]).ExitCode != 0) return true; // no multilib: the caller's build fails first
            try { return Peers.Run(exe, []).ExitCode == 0; }
            catch (System.ComponentModel.Win32Exception) { return false; }
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    });
}
