using System.Runtime.InteropServices;

namespace BlkTap.Bench;

/// <summary>What the figures were measured on (read from /proc where it exists).</summary>
/// <remarks>Threading: an immutable value; <see cref="Current"/> may be called from any thread.</remarks>
public sealed record BenchMachine(int Cores, string Cpu, long MemoryBytes, string Kernel, string Os, string Runtime, string Build)
{
    /// <summary>"Release" or "Debug (JIT optimizer off: figures are not representative)".</summary>
    public static string BuildKind() =>
        typeof(BenchMachine).Assembly.GetCustomAttributes(typeof(System.Diagnostics.DebuggableAttribute), false) is [System.Diagnostics.DebuggableAttribute { IsJITOptimizerDisabled: true }]
            ? "Debug (JIT optimizer off: figures are not representative)" : "Release";

    /// <summary>This machine, now.</summary>
    public static BenchMachine Current()
    {
        string cpu = "unknown", kernel = RuntimeInformation.OSDescription;
        long memory = 0;
        try
        {
            if (File.Exists("/proc/cpuinfo"))
                cpu = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? cpu;
            if (File.Exists("/proc/meminfo"))
            {
                var line = File.ReadLines("/proc/meminfo").FirstOrDefault(l => l.StartsWith("MemTotal:", StringComparison.Ordinal));
                if (line != null && long.TryParse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], out var kib)) memory = kib * 1024;
            }
            if (File.Exists("/proc/sys/kernel/osrelease")) kernel = File.ReadAllText("/proc/sys/kernel/osrelease").Trim();
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return new BenchMachine(Environment.ProcessorCount, cpu, memory, kernel, RuntimeInformation.OSDescription, RuntimeInformation.FrameworkDescription, BuildKind());
    }
}
