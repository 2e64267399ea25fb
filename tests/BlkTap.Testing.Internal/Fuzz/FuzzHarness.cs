using System.Diagnostics;
using BlkTap.Testing;
using NUnit.Framework;

namespace BlkTap.Testing.Fuzz;

/// <summary>
/// The SharpFuzz harness (fuzz/BlkTap.Fuzz, built with the solution) as a child process: in-process
/// replay and mutation, or under afl-fuzz after instrumenting its target assemblies with the
/// SharpFuzz.CommandLine tool (installed once into a cache directory through the ordinary dotnet client).
/// </summary>
internal static class FuzzHarness
{
    public const string SharpFuzzVersion = "2.3.0";

    public static string RepoRoot => RepositoryRoot.Path;

    public static string Corpus(string target) => Path.Combine(RepoRoot, "fuzz", "corpus", target);

    /// <summary>The harness's build output (same configuration as the tests).</summary>
    public static string BuildDirectory
    {
        get
        {
            string config = TestContext.CurrentContext.TestDirectory.Contains($"{Path.DirectorySeparatorChar}Release{Path.DirectorySeparatorChar}", StringComparison.Ordinal) ? "Release" : "Debug";
            var dir = Path.Combine(RepoRoot, "fuzz", "BlkTap.Fuzz", "bin", config, "net10.0");
            if (!File.Exists(Path.Combine(dir, "BlkTap.Fuzz.dll"))) Assert.Fail($"the fuzz harness is not built at {dir}: run `dotnet build BlkTapSim.sln` first");
            return dir;
        }
    }

    public static ProcessResult RunHarness(string directory, params string[] args) =>
        Peers.Run(Peers.Require("dotnet"), [Path.Combine(directory, "BlkTap.Fuzz.dll"), .. args], TimeSpan.FromMinutes(15)); // generous: 10k mutations take 15 s idle, minutes beside CPU hogs

    private static readonly object InstrumentGate = new();
    private static string? _instrumented;

    /// <summary>A copy of the harness whose target assemblies carry SharpFuzz's AFL instrumentation.</summary>
    public static string Instrumented()
    {
        lock (InstrumentGate)
        {
            if (_instrumented != null) return _instrumented;
            var sharpfuzz = SharpFuzzTool();
            var dir = Directory.CreateTempSubdirectory("blktap-afl-bin-").FullName;
            foreach (var f in Directory.GetFiles(BuildDirectory)) File.Copy(f, Path.Combine(dir, Path.GetFileName(f)));
            foreach (var asm in new[] { "BlkTap.Abstractions.dll", "BlkTap.Examples.dll", "BlkTap.Nbd.dll", "BlkTap.Trace.dll" })
                Peers.Run(sharpfuzz, [Path.Combine(dir, asm)]).EnsureSuccess($"sharpfuzz {asm}");
            return _instrumented = dir;
        }
    }

    private static string SharpFuzzTool()
    {
        var toolDir = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "blktap", $"sharpfuzz-{SharpFuzzVersion}");
        var exe = Path.Combine(toolDir, "sharpfuzz");
        if (!File.Exists(exe))
            Peers.Run(Peers.Require("dotnet"), ["tool", "install", "--tool-path", toolDir, "SharpFuzz.CommandLine", "--version", SharpFuzzVersion], TimeSpan.FromMinutes(5))
                .EnsureSuccess("dotnet tool install SharpFuzz.CommandLine (needs the NuGet registry once)");
        return exe;
    }

    /// <summary>Runs afl-fuzz on <paramref name="target"/> for <paramref name="seconds"/>; returns the findings directory and afl's output.</summary>
    public static (string Findings, string Log, int ExitCode) Afl(string target, int seconds, string? corpus = null)
    {
        var afl = Peers.Require("afl-fuzz", "apt-get install afl++ (test.sh's PEER_PACKAGES)");
        var bin = Instrumented();
        var findings = Directory.CreateTempSubdirectory($"blktap-afl-{target}-").FullName;
        var psi = new ProcessStartInfo(afl) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true };
        foreach (var a in new[] { "-i", corpus ?? Corpus(target), "-o", findings, "-V", seconds.ToString(), "-t", "10000", "-m", "none", "--",
                     Peers.Require("dotnet"), Path.Combine(bin, "BlkTap.Fuzz.dll"), target })
            psi.ArgumentList.Add(a);
        psi.Environment["AFL_SKIP_CPUFREQ"] = "1";
        psi.Environment["AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES"] = "1";
        psi.Environment["AFL_NO_UI"] = "1";
        psi.Environment["AFL_SKIP_BIN_CHECK"] = "1"; // the target is `dotnet`; the instrumentation is in the managed assemblies
        psi.Environment["AFL_NO_AFFINITY"] = "1";    // the CPUs are shared with other jobs
        using var p = Process.Start(psi)!;
        p.StandardInput.Close();
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(TimeSpan.FromSeconds(seconds + 120)))
        {
            p.Kill(entireProcessTree: true);
            Assert.Fail($"afl-fuzz {target} did not stop after -V {seconds}");
        }
        return (findings, stdout.Result + stderr.Result, p.ExitCode);
    }

    /// <summary>Inputs AFL saved as crashes (or hangs) under <paramref name="findings"/>.</summary>
    public static List<string> Crashes(string findings, string kind = "crashes") =>
        Directory.EnumerateDirectories(findings, kind, SearchOption.AllDirectories)
            .SelectMany(d => Directory.GetFiles(d)).Where(f => !Path.GetFileName(f).StartsWith("README", StringComparison.Ordinal)).ToList();
}
