using BlkTap.Emulator;
using BlkTap.Testing;
using BlkTap.Testing.Rigs;
using NUnit.Framework;

namespace BlkTap.Abstractions.Tests.Advisories;

/// <summary>
/// XSA-349 (watch flood): a guest writing thousands of xenstore nodes under its device directory, and rewriting its
/// state node thousands of times, keeps the backend's queue of watch reactions bounded (one per watch), while the
/// loop is too busy to drain it; the devices stay connected and serve.
/// </summary>
public class Xsa349WatchFloodTests
{
    private const int Writes = 5000;

    [Test]
    public async Task XenbusBlockBackend_Xsa349_GuestFloodsItsDeviceNodes_PendingWatchWorkBounded()
    {
        await using var rig = await AdvisoryRig.StartAsync();
        var flooder = rig.Frontends[0];
        var honest = rig.Frontends[1];
        var store = rig.Emulator.Store;
        Waits.Quiesce(rig.Emulator, rig.Runtime);

        // The loop is busy (a posted action holds it) while the guest floods: every watch event the flood fires
        // reaches the backend, none can be handled yet.
        using var release = new ManualResetEventSlim();
        var busy = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        rig.Runtime.Post(() => { busy.SetResult(); release.Wait(Waits.Deadline); });
        await Waits.For(busy.Task, "the loop taking the blocking action");
        var connected = ((int)XenbusState.Connected).ToString(System.Globalization.CultureInfo.InvariantCulture);
        for (int i = 0; i < Writes; i++)
        {
            store.Write($"{flooder.FrontendPath}/state", connected);            // the watched node itself
            store.Write($"{flooder.FrontendPath}/state/junk{i}", "x");           // nodes below it
            store.Write($"{flooder.FrontendPath}/flood/n{i}", new string('y', 64)); // its own directory
        }
        rig.Emulator.RunUntilIdle(); // every watch event delivered to the backend's callbacks
        int queuedWhileBusy = rig.Backend.PendingWatchReactions;
        release.Set();
        Waits.Quiesce(rig.Emulator, rig.Runtime);

        Assert.That(queuedWhileBusy, Is.InRange(1, 2), "the flood's reactions were not coalesced (one per watch)");
        Assert.That(rig.Backend.PeakPendingWatchReactions, Is.LessThanOrEqualTo(3), $"{2 * Writes} watch events queued the backend's reactions without bound");
        Assert.That(rig.Backend.PendingWatchReactions, Is.Zero);
        Assert.That(rig.Crashes, Is.Empty);
        // Nothing was lost either: both devices are still connected and serve.
        foreach (var guest in rig.Frontends)
        {
            Assert.That(XenbusDevices.ReadState(store, guest.BackendPath), Is.EqualTo(XenbusState.Connected), guest.BackendPath);
            Assert.That(await Waits.For(guest.WriteAsync(8, new byte[4096]), "a write after the flood"), Is.EqualTo(BlkifStatus.Okay));
        }
        // And a real state change after the flood is still seen: the flooder closes, the backend follows.
        store.Write($"{flooder.FrontendPath}/state", ((int)XenbusState.Closing).ToString(System.Globalization.CultureInfo.InvariantCulture));
        // (its driver, seeing the backend Closing, closes too: Closing may already have become Closed)
        Waits.ForStore(store, () => XenbusDevices.ReadState(store, flooder.BackendPath) is XenbusState.Closing or XenbusState.Closed,
            "the backend following the flooder to Closing", flooder.BackendPath);
        Assert.That(await Waits.For(honest.ReadAsync(8, new byte[4096]), "the honest guest's read"), Is.EqualTo(BlkifStatus.Okay));
    }
}
