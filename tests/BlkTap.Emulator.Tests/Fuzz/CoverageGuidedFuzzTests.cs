using NUnit.Framework;
using BlkTap.Testing.Fuzz;

namespace BlkTap.Emulator.Tests.Fuzz;

/// <summary>
/// SharpFuzz harnesses: a short AFL++ campaign per target (coverage-guided; category "Fuzz"), and an
/// in-process run over each corpus plus random mutations (no AFL needed).
/// </summary>
public class CoverageGuidedFuzzTests
{
    // decoder: BlkifCodec.DecodeRequest + BlkifValidation on both ABIs; ring: BackRing over a page from the
    // input; nbd: NbdRequestHeader.TryRead and a real NbdServer's option haggling; trace: blkparse, MSR, fio iolog.
    private static readonly string[] Targets = ["decoder", "ring", "nbd", "trace"];

    [Test, Category("Fuzz")]
    public void AflFuzz_EachTargetTwentySeconds_FindsNoCrashOrHang()
    {
        const int seconds = 20;
        var results = new (string Target, string Findings, string Log, int Rc)[Targets.Length];
        // Two campaigns at a time: the machine has two cores.
        Parallel.For(0, Targets.Length, new ParallelOptions { MaxDegreeOfParallelism = 2 }, i =>
        {
            var (findings, log, rc) = FuzzHarness.Afl(Targets[i], seconds);
            results[i] = (Targets[i], findings, log, rc);
        });
        foreach (var r in results)
        {
            TestContext.Out.WriteLine($"{r.Target}: {LastStatistics(r.Log)} (findings in {r.Findings})");
            Assert.That(r.Rc, Is.EqualTo(0), $"afl-fuzz {r.Target} failed:\n{Tail(r.Log)}");
            Assert.That(FuzzHarness.Crashes(r.Findings), Is.Empty, $"afl-fuzz {r.Target} found crashing inputs (replay: dotnet BlkTap.Fuzz.dll {r.Target} --replay PATH)");
            Assert.That(FuzzHarness.Crashes(r.Findings, "hangs"), Is.Empty, $"afl-fuzz {r.Target} found hanging inputs");
            Assert.That(Directory.EnumerateFiles(r.Findings, "id:*", SearchOption.AllDirectories).Count(), Is.GreaterThan(0), $"afl-fuzz {r.Target} queued nothing:\n{Tail(r.Log)}");
        }
    }

    /// <summary>The harness's planted bug must be found and saved: otherwise "no crash" above would prove nothing.</summary>
    [Test, Category("Fuzz")]
    public void AflFuzz_TargetWithPlantedCrash_CrashIsSavedInFindings()
    {
        var corpus = Directory.CreateTempSubdirectory("blktap-afl-selftest-in-").FullName;
        File.WriteAllBytes(Path.Combine(corpus, "a"), "a"u8.ToArray());
        var (findings, log, _) = FuzzHarness.Afl("selftest", 10, corpus);
        var crashes = FuzzHarness.Crashes(findings);
        Assert.That(crashes, Is.Not.Empty, Tail(log));
        Assert.That(File.ReadAllBytes(crashes[0])[0], Is.EqualTo((byte)'!'));
    }

    [TestCase("decoder"), TestCase("ring"), TestCase("nbd"), TestCase("trace")]
    public void Harness_CorpusPlusMutationsInProcess_NoFailure(string target)
    {
        var r = FuzzHarness.RunHarness(FuzzHarness.BuildDirectory, target, "--mutate", "10000", "--seed", "7", FuzzHarness.Corpus(target));
        Assert.That(r.ExitCode, Is.EqualTo(0), r.StdOut + r.StdErr);
        Assert.That(r.StdOut, Does.Contain("no failure"));
    }

    private static string LastStatistics(string log) =>
        log.Split('\n').LastOrDefault(l => l.Contains("Statistics", StringComparison.Ordinal))?.Trim() ?? "(no statistics line)";

    private static string Tail(string log) => string.Join('\n', log.Split('\n').TakeLast(25));
}
