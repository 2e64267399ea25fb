using System.Collections.Concurrent;
using BlkTap.Testing;
using NUnit.Framework;

namespace BlkTap.Testing.Native;

/// <summary>
/// Builds the C programs under Native/ for one ABI: natively for x86_64-abi, with <c>gcc -m32</c> for
/// x86_32-abi. A missing gcc, Xen header or 32-bit toolchain (gcc-multilib), or a kernel that cannot
/// run 32-bit programs, fails the test in CI and ignores it locally (<see cref="Peers.Required"/>). Each program is compiled once per test run.
/// Thread-safe.
/// </summary>
internal static class NativeAbi
{
    private const string BlkifHeader = "/usr/include/xen/io/blkif.h";
    private static readonly ConcurrentDictionary<(string, BlkifProtocol), Lazy<string>> Built = new();
    private static readonly Lazy<string?> M32Problem = new(ProbeM32);

    /// <summary>The path of <paramref name="cFile"/> (under Native/) compiled for <paramref name="protocol"/>.</summary>
    public static string Build(string cFile, BlkifProtocol protocol)
    {
        Peers.Require("gcc", "apt-get install gcc");
        Peers.RequireFile(BlkifHeader, "apt-get install libxen-dev");
        if (protocol == BlkifProtocol.X86_32 && M32Problem.Value is { } problem)
        {
            var message = $"x86_32-abi C programs are unavailable here: {problem.Trim()}";
            if (Peers.Required) Assert.Fail(message);
            else Assert.Ignore(message);
        }
        var lazy = Built.GetOrAdd((cFile, protocol), key => new Lazy<string>(() =>
        {
            var source = File.ReadAllText(Path.Combine(TestContext.CurrentContext.TestDirectory, "Native", key.Item1));
            var name = Path.GetFileNameWithoutExtension(key.Item1) + (key.Item2 == BlkifProtocol.X86_32 ? "-m32" : "-m64");
            return key.Item2 == BlkifProtocol.X86_32 ? NativeProgram.Compile(source, name, "-m32") : NativeProgram.Compile(source, name);
        }));
        return lazy.Value;
    }

    private static string? ProbeM32()
    {
        var gcc = Peers.Find("gcc");
        if (gcc == null) return "gcc not found";
        const string probe = "#include <stdint.h>\n#include <stdio.h>\nint main(void) { printf(\"%zu\\n\", sizeof(void *)); return 0; }\n";
        string exe;
        try { exe = NativeProgram.Compile(probe, "probe", "-m32"); }
        catch (NUnit.Framework.AssertionException ex) { return $"gcc -m32 cannot build a program ({ex.Message.Trim()}); install gcc-multilib"; }
        try
        {
            var run = Peers.Run(exe, []);
            return run.ExitCode == 0 && run.StdOut.Trim() == "4" ? null : $"the -m32 program printed '{run.StdOut.Trim()}' ({run.StdErr.Trim()})";
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            // NOTE: a kernel without IA32 emulation (some VMs) refuses i386 ELF files with ENOEXEC; NativeProgram then
            // runs them under qemu-i386, which only a missing qemu-user leaves impossible.
            return $"this kernel cannot run a 32-bit program and qemu-i386 is missing ({ex.Message}); install qemu-user";
        }
    }
}
