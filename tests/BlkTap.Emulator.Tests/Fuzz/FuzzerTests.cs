using BlkTap.Cli;
using BlkTap.Emulator;
using NUnit.Framework;

namespace BlkTap.Emulator.Tests.Fuzz;

public class FuzzerTests
{
    private static void Mem(TapRuntime rt)
    {
        var serve = new BlockDeviceHook(new MemoryBlockDevice(1L << 20));
        rt.RegisterControlHook("mem", serve);
        rt.RegisterRequestHook("mem", serve);
    }

    [Test]
    public void FuzzCommand_Seed1TenThousandIterations_ExitsZeroAndReportsCoverage()
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int rc = CliApp.Run(["fuzz", "--seed", "1", "--iterations", "10000"], stdout, stderr);
        Assert.That(rc, Is.EqualTo(0), stdout + "\n" + stderr);
        Assert.That(stdout.ToString(), Does.Contain("every invariant held"));
        Assert.That(stdout.ToString(), Does.Contain("ring-protocol breaks"));
    }

    [Test]
    public void Fuzzer_TwoThousandRoundSeeds_EveryInvariantHolds()
    {
        var report = Fuzzer.Run(new FuzzOptions { Seed = 7, Iterations = 2000 * 8, RequestsPerRound = 8, Configure = Mem });
        Assert.That(report.Rounds, Is.EqualTo(2000));
        Assert.That(report.Failures, Is.Empty, string.Join("\n", report.Failures));
        Assert.That(report.ProtocolBreaks, Is.GreaterThan(0));
        Assert.That(report.DomainDeaths, Is.GreaterThan(0));
        Assert.That(report.InjectedFailures, Is.GreaterThan(0));
    }

    /// <summary>A tap that corrupts one byte of some reads: the fuzzer must catch it and shrink the case.</summary>
    [Test]
    public void Fuzzer_ChainCorruptsReads_FailsWithReproducibleShrunkSeed()
    {
        void Buggy(TapRuntime rt)
        {
            int n = 0;
            rt.RegisterResponseHook("liar", Hook.Response(r =>
            {
                if (r.Operation == BlkifOperation.Read && r.Status == BlkifStatus.Okay && r.HasData && ++n % 50 == 0) r.SegmentData(0)[0] ^= 0xFF;
            }));
            Mem(rt);
        }
        var options = new FuzzOptions { Seed = 3, Iterations = 2000, RequestsPerRound = 200, Configure = Buggy };
        var report = Fuzzer.Run(options);
        Assert.That(report.Failures, Is.Not.Empty);
        var f = report.Failures[0];
        Assert.That(f.Description, Does.Contain("differ from the model"));
        Assert.That(f.Requests, Is.LessThanOrEqualTo(200));
        Assert.That(Fuzzer.RunRound(options, f.RoundSeed, f.Requests, null), Is.Not.Null, "the shrunk case reproduces");
    }

    [Test]
    public void FuzzCommand_UnknownTap_ExitsTwoWithOneLine()
    {
        var stderr = new StringWriter();
        int rc = CliApp.Run(["fuzz", "--tap", "nosuchtap"], new StringWriter(), stderr);
        Assert.That(rc, Is.EqualTo(2));
        Assert.That(stderr.ToString(), Does.Contain("unknown tap 'nosuchtap'"));
    }
}
