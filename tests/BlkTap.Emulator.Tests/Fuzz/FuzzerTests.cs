using System.Text.Json;
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
        Assert.That(stdout.ToString(), Does.Contain("hostile requests/s"));
    }

    /// <summary>CI's share of the nightly run: 10^5 hostile requests (the nightly command tries 10^6), through the CLI's JSON report.</summary>
    [Test]
    public void FuzzCommand_HundredThousandIterations_ChecksHundredThousandHostileRequestsWithoutViolation()
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int rc = CliApp.Run(["fuzz", "--seed", "11", "--iterations", "100000", "--fault-rounds", "0", "--json"], stdout, stderr);
        Assert.That(rc, Is.EqualTo(0), stdout + "\n" + stderr);
        using var json = JsonDocument.Parse(stdout.ToString());
        var root = json.RootElement;
        Assert.That(root.GetProperty("violations").GetInt64(), Is.EqualTo(0), stdout.ToString());
        Assert.That(root.GetProperty("hostile_requests").GetInt64(), Is.GreaterThanOrEqualTo(100_000));
        Assert.That(root.GetProperty("hostile_requests_per_s").GetDouble(), Is.GreaterThan(0));
        Assert.That(root.GetProperty("honest_operations").GetInt64(), Is.GreaterThan(0));
        Assert.That(root.GetProperty("protocol_breaks").GetInt32(), Is.GreaterThan(0));
        Assert.That(root.GetProperty("domain_deaths").GetInt32(), Is.GreaterThan(0));
        Assert.That(root.GetProperty("hostile_kinds").EnumerateObject().Count(), Is.EqualTo(13), "every kind of hostile request was tried");
    }

    /// <summary>Rounds run in parallel but merge in round order: the report is a function of the options, not of the threads.</summary>
    [Test]
    public void Fuzzer_OneOrTwoWorkers_SameReport()
    {
        FuzzReport Run(int workers) => Fuzzer.Run(new FuzzOptions { Seed = 5, Iterations = 3000, RequestsPerRound = 40, Parallelism = workers, Configure = Mem });
        var one = Run(1);
        var two = Run(2);
        Assert.That(one.Failures, Is.Empty, string.Join("\n", one.Failures));
        Assert.That(one.HostileRequests, Is.GreaterThanOrEqualTo(3000));
        Assert.That((two.Rounds, two.HostileRequests, two.HonestOperations, two.ProtocolBreaks, two.DomainDeaths, two.SpuriousNotifications, two.Delayed, two.InjectedFailures),
            Is.EqualTo((one.Rounds, one.HostileRequests, one.HonestOperations, one.ProtocolBreaks, one.DomainDeaths, one.SpuriousNotifications, one.Delayed, one.InjectedFailures)));
        Assert.That(two.HostileKinds, Is.EquivalentTo(one.HostileKinds));
    }

    /// <summary>Every runtime the fuzzer configured is released once its round is over (the CLI disposes the round's chain there).</summary>
    [Test]
    public void Fuzzer_ReleaseCallback_CalledOncePerConfiguredRuntime()
    {
        var configured = new System.Collections.Concurrent.ConcurrentDictionary<TapRuntime, int>();
        var released = new System.Collections.Concurrent.ConcurrentBag<TapRuntime>();
        var report = Fuzzer.Run(new FuzzOptions
        {
            Seed = 2, Iterations = 500, RequestsPerRound = 20, Parallelism = 2,
            Configure = rt => { Assert.That(configured.TryAdd(rt, 0), Is.True); Mem(rt); },
            Release = released.Add,
        });
        Assert.That(report.Failures, Is.Empty, string.Join("\n", report.Failures));
        Assert.That(released, Is.EquivalentTo(configured.Keys));
        Assert.That(configured.Count, Is.GreaterThanOrEqualTo(report.Rounds));
    }

    [Test]
    public void Fuzzer_TwoThousandRoundSeeds_EveryInvariantHolds()
    {
        // A round of 8 requests has at most 4 hostile ones, so 8000 hostile requests take at least 2000 rounds.
        var report = Fuzzer.Run(new FuzzOptions { Seed = 7, Iterations = 2000 * 4, RequestsPerRound = 8, Configure = Mem });
        Assert.That(report.Rounds, Is.GreaterThanOrEqualTo(2000));
        Assert.That(report.HostileRequests, Is.GreaterThanOrEqualTo(2000 * 4));
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
        var options = new FuzzOptions { Seed = 3, Iterations = 1000, RequestsPerRound = 200, Configure = Buggy };
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
