using BlkTap.Emulator;
using BlkTap.Testing;
using BlkTap.Testing.Rigs;
using NUnit.Framework;

namespace BlkTap.Abstractions.Tests.Advisories;

/// <summary>
/// XSA-332 (event storm), the ring side: a guest that refills its ring and notifies as fast as the backend consumes
/// it (played deterministically from the hook: each of its requests publishes the next, as a guest on another CPU
/// would) does not starve another guest's session, and the backend's work for it is bounded to one ring's worth per
/// loop pass.
/// </summary>
public class Xsa332RingStormTests
{
    private const ulong StormSector = 512;
    private const long Cap = 50_000_000; // a safety net only: the storm stops once the quiet guest is done

    private sealed class PassCounter : IEndOfPassHandler
    {
        public bool Registered;
        public long ThisPass, MaxPerPass, Passes;

        public void OnEndOfPass()
        {
            MaxPerPass = Math.Max(MaxPerPass, ThisPass);
            ThisPass = 0;
            Passes++;
            Registered = false;
        }
    }

    [Test]
    public async Task RingSession_Xsa332_GuestRefillsRingAsFastAsConsumed_OtherGuestServedAndWorkPerPassBounded()
    {
        await using var rig = await AdvisoryRig.StartAsync();
        var storm = rig.Frontends[0];
        var quiet = rig.Frontends[1];
        // The storming guest answers to nobody: its driver no longer reads responses (it would find its ring full of
        // requests it never made), the test plays the guest.
        storm.EventChannel!.SetHandler(null);
        var (_, stormPage) = AdvisoryRig.GrantPage(storm);
        var next = AdvisoryRig.Raw(AdvisoryRig.Rw(BlkifOperation.Read, StormSector, new BlkifSegment(stormPage, 0, 0)), storm.Layout);
        var counter = new PassCounter();
        long stormed = 0;
        var stop = 0;
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        rig.Inspect = r =>
        {
            if (r.Session.DomainId != storm.Domain.Id) return HookResult.Pass;
            stormed++;
            counter.ThisPass++;
            if (!counter.Registered) { counter.Registered = true; r.Runtime.RunAtEndOfPass(counter); }
            started.TrySetResult();
            if (Volatile.Read(ref stop) == 0 && stormed < Cap) Publish(storm, next);
            return HookResult.Pass;
        };
        try
        {
            Publish(storm, next);
            await Waits.For(started.Task, "the storm reaching the hook");
            var buffer = new byte[4096];
            for (int i = 0; i < 20; i++)
                Assert.That(await Waits.For(quiet.ReadAsync((ulong)i * 8, buffer), $"the quiet guest's read {i} during the storm"), Is.EqualTo(BlkifStatus.Okay));
        }
        finally { Volatile.Write(ref stop, 1); }
        Waits.Quiesce(rig.Emulator, rig.Runtime);
        long total = Waits.OnLoop(rig.Runtime, () => stormed);
        var perPass = Waits.OnLoop(rig.Runtime, () => counter.MaxPerPass);

        Assert.That(total, Is.LessThan(Cap), "the quiet guest was served only once the storm ended");
        Assert.That(total, Is.GreaterThan(storm.Ring!.Size), "the storm ran on for more than one ring's worth");
        Assert.That(perPass, Is.InRange(1, storm.Ring!.Size), "the storming session's requests in one loop pass");
        Assert.That(rig.Crashes, Is.Empty);
    }

    /// <summary>The guest writes one more request into its next slot, publishes it and notifies.</summary>
    private static unsafe void Publish(BlkFront guest, byte[] request)
    {
        var ring = guest.Ring!;
        ref uint reqProd = ref *(uint*)ring.Address;
        uint prod = Volatile.Read(ref reqProd);
        request.CopyTo(GuestMemory.Slot(guest, prod));
        Volatile.Write(ref reqProd, prod + 1);
        guest.EventChannel!.Notify();
    }
}
