using BlkTap.Emulator;
using NUnit.Framework;

namespace BlkTap.Emulator.Tests.Fuzz;

/// <summary>Deterministic backend-side fault simulation: failing storage, a tap domain losing its blkback mid-flight, coalesced notifications.</summary>
public class FaultSimulationTests
{
    [Test]
    public void FaultSimulation_TwoThousandRoundSeeds_EveryInvariantHoldsAndEveryFaultIsExercised()
    {
        var report = FaultSimulation.Run(new FaultSimulationOptions { Seed = 11, Rounds = 2000 });
        TestContext.Out.WriteLine($"{report.Rounds[FaultRoundKind.TerminatorFaults]} terminator-fault rounds, {report.Rounds[FaultRoundKind.TapFrontendDeath]} tap-frontend deaths " +
            $"({report.DeathsWithRequestsInFlight} with requests in flight), {report.Operations} operations, {report.DeviceFailures} storage failures, " +
            $"{report.ErrorsSeen} errors seen, {report.CoalescedNotifications} coalesced notifications, {report.Delayed} reordered, {report.Elapsed.TotalSeconds:F1} s");
        Assert.That(report.Failures, Is.Empty, string.Join("\n", report.Failures));
        Assert.That(report.Rounds[FaultRoundKind.TerminatorFaults], Is.GreaterThan(500));
        Assert.That(report.Rounds[FaultRoundKind.TapFrontendDeath], Is.GreaterThan(500));
        Assert.That(report.DeviceFailures, Is.GreaterThan(100), "storage failures were injected");
        Assert.That(report.ErrorsSeen, Is.GreaterThan(100), "guests saw them");
        Assert.That(report.DeathsWithRequestsInFlight, Is.GreaterThan(50), "tap frontends died with requests in flight");
        Assert.That(report.CoalescedNotifications, Is.GreaterThan(0), "many notifies, one delivery");
        Assert.That(report.Delayed, Is.GreaterThan(0));
    }

    /// <summary>A storage stack that reports success for a write it failed: the simulation must catch it, and the round must replay.</summary>
    [Test]
    public void FaultSimulation_HookHidesStorageErrors_FailsWithReproducibleRoundSeed()
    {
        var options = new FaultSimulationOptions
        {
            Seed = 5,
            Rounds = 40,
            // A "retry that lies": turns every ERROR from the storage into OKAY.
            Configure = rt => rt.RegisterResponseHook("liar", Hook.Response(r => { if (r.Status == BlkifStatus.Error) r.Status = BlkifStatus.Okay; })),
        };
        var report = FaultSimulation.Run(options);
        Assert.That(report.Failures, Is.Not.Empty);
        var (seed, kind, description) = report.Failures[0];
        Assert.That(description, Does.Contain("differ from the model").Or.Contain("expected ERROR"));
        Assert.That(FaultSimulation.RunRound(options, seed), Is.EqualTo(description), $"round {seed} ({kind}) replays identically");
    }
}
