using System.Globalization;
using BlkTap.Emulator;
using NUnit.Framework;

namespace BlkTap.Abstractions.Tests.Advisories;

/// <summary>
/// XSA-350 (connect/disconnect flipping): a guest that goes Initialised (connect), Closing, Closed and back to
/// Initialising 10^4 times, with a fresh event channel each time as blkfront does, leaves nothing behind: no session,
/// no mapping (handle), no grant still mapped, no event channel, no queued watch reaction. An honest guest on the
/// same tap stays connected throughout. Deterministic (one thread), so fast and reproducible.
/// </summary>
public class Xsa350FlipTests
{
    private const int Cycles = 10_000;

    [Test]
    public async Task XenbusBlockBackend_Xsa350_TenThousandConnectCloseCycles_NothingLeftBehind()
    {
        await using var rig = await EmulatorRig.StartAsync(new EmulatorRigOptions { Frontends = 1, Deterministic = true, Seed = 350 }, rt =>
        {
            var serve = new BlockDeviceHook(new MemoryBlockDevice(1 << 20));
            rt.RegisterControlHook("mem", serve);
            rt.RegisterRequestHook("mem", serve);
        });
        var emulator = rig.Emulator;
        var store = emulator.Store;
        rig.Emulator.RunUntilIdle();
        int dom0Ports = emulator.Dom0.EventChannels.Count;   // the honest guest's backend end
        int mappings = emulator.MappingCount;                 // the honest guest's ring
        int watches = store.WatchCount;

        var flipper = emulator.CreateDomain("flipper");
        XenbusDevices.CreateVbd(store, flipper.Id, 0, 51712, "flip");
        var fe = XenbusDevices.FrontendPath(flipper.Id, 51712);
        var be = store.Read(fe + "/backend")!;
        var ringPage = flipper.AllocatePages();
        var ringRef = flipper.Grants.GrantAccess(0, ringPage, readOnly: false);
        store.Write(fe + "/ring-ref", ringRef.ToString(CultureInfo.InvariantCulture));
        store.Write(fe + "/protocol", BlkifProtocolNames.X86_64);
        Until(emulator, store, be, XenbusState.InitWait, 0);

        int connects = 0;
        for (int cycle = 0; cycle < Cycles; cycle++)
        {
            flipper.GetPage(ringPage).Clear();
            _ = new FrontRing(ringPage, BlkifConstants.PageSize, BlkifLayout.X86_64, initialiseShared: true);
            var (port, channel) = flipper.EventChannels.AllocUnbound(0);
            store.Write(fe + "/event-channel", port.ToString(CultureInfo.InvariantCulture));
            XenbusDevices.WriteState(store, fe, XenbusState.Initialised);
            Until(emulator, store, be, XenbusState.Connected, cycle);
            connects++;
            XenbusDevices.WriteState(store, fe, XenbusState.Connected);
            XenbusDevices.WriteState(store, fe, XenbusState.Closing);
            if (cycle % 2 == 0) Until(emulator, store, be, XenbusState.Closing, cycle); // odd cycles: Closed right away
            XenbusDevices.WriteState(store, fe, XenbusState.Closed);
            Until(emulator, store, be, XenbusState.Closed, cycle);
            channel.Dispose();
            if (cycle == Cycles - 1) break;
            XenbusDevices.WriteState(store, fe, XenbusState.Initialising);
            Until(emulator, store, be, XenbusState.InitWait, cycle);
        }
        emulator.RunUntilIdle();

        Assert.That(connects, Is.EqualTo(Cycles));
        Assert.That(rig.Runtime.Sessions.Select(s => s.DomainId), Is.EqualTo(new[] { rig.Frontends[0].Domain.Id }), "sessions left");
        Assert.That(rig.Backend.Sessions, Has.Count.EqualTo(1), "backend sessions left");
        Assert.That(emulator.MappingCount, Is.EqualTo(mappings), "mappings (handles) left");
        Assert.That(flipper.Grants.MapCount(ringRef), Is.Zero, "the ring grant is still mapped");
        Assert.That(flipper.Grants.ActiveCount, Is.EqualTo(1), "grants: only the guest's own ring grant");
        Assert.That(flipper.Grants.EndAccess(ringRef), Is.True, "the guest cannot take its ring back");
        Assert.That(emulator.Dom0.EventChannels.Count, Is.EqualTo(dom0Ports), "backend event channels left");
        Assert.That(flipper.EventChannels.Count, Is.Zero, "guest event channels left");
        Assert.That(store.WatchCount, Is.EqualTo(watches + 1), "watches: one per device, not one per cycle");
        Assert.That(rig.Backend.PendingWatchReactions, Is.Zero);
        Assert.That(rig.Runtime.InFlight, Is.Zero);
        await rig.Execute(async () => Assert.That(await rig.Frontends[0].ReadAsync(0, new byte[4096]), Is.EqualTo(BlkifStatus.Okay)));
    }

    private static void Until(XenEmulator emulator, EmulatedXenStore store, string be, XenbusState state, int cycle)
    {
        if (!emulator.RunUntil(() => XenbusDevices.ReadState(store, be) == state))
            Assert.Fail($"cycle {cycle}: the backend did not reach {state} (it is {XenbusDevices.ReadState(store, be)})");
    }
}
