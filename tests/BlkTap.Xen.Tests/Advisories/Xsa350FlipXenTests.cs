using System.Diagnostics;
using System.Globalization;
using BlkTap.Testing;
using BlkTap.Xen;
using NUnit.Framework;

namespace BlkTap.Xen.Tests.Advisories;

/// <summary>
/// XSA-350 (connect/disconnect flipping) on a real dom0: a hostile frontend (dom0 itself, a gntalloc ring page and a
/// fresh unbound event channel each cycle, as blkfront does) goes Initialised, Connected, Closing, Closed and back to
/// Initialising again and again. Each cycle the backend reaches Closed; afterwards nothing is left: no session, no
/// gntdev mapping (the mapper's count and the kernel's /proc/self/maps), no evtchn handle (/proc/self/fd), no queued
/// watch reaction, and the device still connects and serves. The emulator runs 10^4 cycles
/// (tests/BlkTap.Abstractions.Tests/Advisories/Xsa350FlipTests.cs); under the lab's TCG a cycle costs about 25
/// xenstore round trips, two evtchn binds and a gntdev map (1.2 s a cycle on a host at load average 40), so this runs
/// <see cref="DefaultCycles"/> (BLKTAP_XSA350_CYCLES overrides).
/// </summary>
[TestFixture]
[Category("RequiresXen")]
public sealed class Xsa350FlipXenTests
{
    private const int DefaultCycles = 100;

    [SetUp]
    public void RequireXen() => XenAdvisoryRig.RequireXen();

    [Test]
    public void XenbusBlockBackend_Xsa350_ConnectCloseCyclesOnRealXen_NothingLeftBehind()
    {
        int cycles = int.TryParse(Environment.GetEnvironmentVariable("BLKTAP_XSA350_CYCLES"), NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n > 0 ? n : DefaultCycles;
        using var rig = XenAdvisoryRig.Start();
        int maps = XenResources.GntdevMappings();
        int evtchns = XenResources.EvtchnHandles();
        var flipper = rig.Attach("xvdq");
        var clock = Stopwatch.StartNew();

        int connects = 0, closed = 0;
        for (int cycle = 0; cycle < cycles; cycle++)
        {
            flipper.OfferRing();
            flipper.WriteState(XenbusState.Initialised);
            flipper.WaitBackend(XenbusState.Connected, $"cycle {cycle}: the backend's Connected");
            connects++;
            flipper.WriteState(XenbusState.Connected);
            flipper.WriteState(XenbusState.Closing);
            if (cycle % 2 == 0) flipper.WaitBackend(XenbusState.Closing, $"cycle {cycle}: the backend's Closing"); // odd cycles: Closed right away
            flipper.WriteState(XenbusState.Closed);
            flipper.WaitBackend(XenbusState.Closed, $"cycle {cycle}: the backend's Closed");
            closed++;
            flipper.ReleaseChannel();
            if (cycle == cycles - 1) break;
            flipper.WriteState(XenbusState.Initialising);
            flipper.WaitBackend(XenbusState.InitWait, $"cycle {cycle}: the backend's InitWait");
        }
        clock.Stop();
        Waits.OnLoop(rig.Runtime, () => 0);
        TestContext.Out.WriteLine($"{cycles} cycles in {clock.Elapsed.TotalSeconds:F1} s");
        TestContext.Out.WriteLine(FormattableString.Invariant($"XSA-350 figure: cycles={cycles}"));
        TestContext.Out.WriteLine(FormattableString.Invariant($"XSA-350 figure: cycle_ms={clock.Elapsed.TotalMilliseconds / cycles:F1}"));

        Assert.That((connects, closed), Is.EqualTo((cycles, cycles)));
        Assert.That(Waits.OnLoop(rig.Runtime, () => rig.Runtime.Sessions.Count), Is.Zero, "sessions left");
        Assert.That(Waits.OnLoop(rig.Runtime, () => rig.Backend.Sessions.Count), Is.Zero, "backend sessions left");
        Assert.That(rig.Gntdev.MappingCount, Is.Zero, "gntdev mappings left (the mapper's count)");
        Assert.That(XenResources.GntdevMappings(), Is.EqualTo(maps), "gntdev mappings left (/proc/self/maps)");
        Assert.That(XenResources.EvtchnHandles(), Is.EqualTo(evtchns), "event channels left (/dev/xen/evtchn descriptors)");
        Assert.That(rig.Backend.PendingWatchReactions, Is.Zero);
        Assert.That(rig.Runtime.InFlight, Is.Zero);
        Assert.That(rig.Crashes, Is.Empty);

        // Nothing is wedged either: the same device connects once more and serves.
        flipper.WriteState(XenbusState.Initialising);
        flipper.WaitBackend(XenbusState.InitWait, "the backend's InitWait after the flips");
        flipper.Connect();
        var page = flipper.Grant(1, writable: true);
        var response = flipper.Submit(XenAdvisoryRig.Rw(BlkifOperation.Read, 0, new BlkifSegment(page.Reference(0), 0, 7)), "a read after the flips");
        Assert.That(response.Status, Is.EqualTo(BlkifStatus.Okay));
        Assert.That(rig.Gntdev.MappingCount, Is.EqualTo(1), "only the ring stays mapped");
    }
}
