using System.Collections.Concurrent;
using BlkTap.Emulator;
using BlkTap.Testing;
using NUnit.Framework;

namespace BlkTap.Xen.Tests.Backend;

/// <summary>
/// The generic xenbus backend (what runs in a real dom0) driven on the emulator: hostile frontends written by a
/// fake guest, and blkback's reconnect rule. Another device on the same backend must keep working throughout.
/// </summary>
[TestFixture]
public sealed class XenbusBackendTests
{
    private const int DiskSectors = 4096;

    private static async Task<(EmulatorRig Rig, ConcurrentQueue<TapDiagnostic> Diagnostics)> StartRig()
    {
        var diagnostics = new ConcurrentQueue<TapDiagnostic>();
        var rig = await EmulatorRig.StartAsync(new EmulatorRigOptions { Frontends = 1, Diagnostics = diagnostics.Enqueue }, runtime =>
        {
            var serve = new BlockDeviceHook(_ => new MemoryBlockDevice(DiskSectors * 512L));
            runtime.RegisterControlHook("mem", serve);
            runtime.RegisterRequestHook("mem", serve);
        });
        return (rig, diagnostics);
    }

    private static void WaitForBackend(EmulatorRig rig, string backendPath, XenbusState state) =>
        Waits.ForStore(rig.Emulator.Store, () => XenbusDevices.ReadState(rig.Emulator.Store, backendPath) == state, $"the backend's {state}");

    private static async Task AssertHealthy(BlkFront front, byte fill)
    {
        var data = new byte[8192];
        Array.Fill(data, fill);
        Assert.That(await front.WriteAsync(64, data), Is.EqualTo(BlkifStatus.Okay), "the healthy device's write");
        var back = new byte[8192];
        Assert.That(await front.ReadAsync(64, back), Is.EqualTo(BlkifStatus.Okay), "the healthy device's read");
        Assert.That(back, Is.EqualTo(data));
    }

    public static IEnumerable<TestCaseData> HostileFrontends()
    {
        var good = new Dictionary<string, string> { ["protocol"] = "x86_64-abi", ["ring-ref"] = "8", ["event-channel"] = "4242" };
        TestCaseData Case(string name, string expected, params (string Key, string? Value)[] changes)
        {
            var nodes = new Dictionary<string, string?>(good.Select(kv => KeyValuePair.Create(kv.Key, (string?)kv.Value)));
            foreach (var (k, v) in changes) nodes[k] = v;
            return new TestCaseData(nodes, expected).SetName($"Connect_{name}_ClosesOnlyThatDevice");
        }
        yield return Case("NonNumericRingRef", "ring-ref 'eight' is not a grant reference", ("ring-ref", "eight"));
        yield return Case("NegativeRingRef", "ring-ref '-1' is not a grant reference", ("ring-ref", "-1"));
        yield return Case("RingPageOrderAboveMaximum", "ring-page-order '4' is not a number from 0 to 3", ("ring-page-order", "4"));
        yield return Case("HugeRingPageOrder", "ring-page-order '99999999999999' is not a number", ("ring-page-order", "99999999999999"));
        yield return Case("UnknownProtocol", "unknown protocol 'arm-abi'", ("protocol", "arm-abi"));
        yield return Case("EventChannelNotBound", "cannot bind event channel 4242", ("event-channel", "4242"));
        yield return Case("NonNumericEventChannel", "event-channel 'x' is not a port number", ("event-channel", "x"));
        yield return Case("UngrantedRing", "cannot map ring grant", ("ring-ref", "77"), ("event-channel", null));
    }

    [TestCaseSource(nameof(HostileFrontends))]
    public async Task Connect_HostileFrontend_ClosesOnlyThatDevice(Dictionary<string, string?> nodes, string expected)
    {
        var (rig, diagnostics) = await StartRig();
        await using var _ = rig;
        var store = rig.Emulator.Store;
        var guest = rig.Emulator.CreateDomain("hostile");
        var paths = XenbusDevices.CreateVbd(store, guest.Id, 0, 51728, "hostile-disk");
        WaitForBackend(rig, paths.BackendPath, XenbusState.InitWait);
        if (nodes.TryGetValue("event-channel", out var port) && port == null)
        {
            // A real unbound port offered to dom0, so that only the ring grant is wrong.
            nodes["event-channel"] = guest.EventChannels.AllocUnbound(0).Port.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }
        foreach (var (k, v) in nodes) if (v != null) store.Write($"{paths.FrontendPath}/{k}", v);
        XenbusDevices.WriteState(store, paths.FrontendPath, XenbusState.Initialised);

        WaitForBackend(rig, paths.BackendPath, XenbusState.Closed);
        // The backend reports before it writes Closed.
        Assert.That(diagnostics.Any(d => d.Message.Contains(expected, StringComparison.Ordinal)), Is.True, $"a diagnostic containing \"{expected}\"");
        Assert.That(store.Read(paths.BackendPath + "/hotplug-error"), Does.Contain(expected), "the reason, where the guest and the toolstack can read it");
        Assert.That(diagnostics.Where(d => d.Exception != null), Is.Empty, "no exception reached the runtime");
        Assert.That(rig.Emulator.Faults, Is.Empty);
        Assert.That(rig.Runtime.Sessions.Any(s => s.DomainId == guest.Id), Is.False, "the hostile device's session is closed");
        await AssertHealthy(rig.Frontends[0], 0x5A);
    }

    [Test]
    public async Task FrontendDirectory_VanishesAfterInitWait_DiagnosticAndClosed()
    {
        var (rig, diagnostics) = await StartRig();
        await using var _ = rig;
        var store = rig.Emulator.Store;
        var guest = rig.Emulator.CreateDomain("vanishing");
        var paths = XenbusDevices.CreateVbd(store, guest.Id, 0, 51728, "x");
        WaitForBackend(rig, paths.BackendPath, XenbusState.InitWait);
        store.Remove(paths.FrontendPath);
        WaitForBackend(rig, paths.BackendPath, XenbusState.Closed);
        Assert.That(diagnostics.Any(d => d.Message.Contains("the frontend's directory disappeared", StringComparison.Ordinal)), Is.True, "the diagnostic");
        Assert.That(store.Read(paths.BackendPath + "/hotplug-error"), Is.EqualTo("the frontend's directory disappeared"));
        Assert.That(rig.Emulator.Faults, Is.Empty);
        await AssertHealthy(rig.Frontends[0], 0x33);
    }

    [Test]
    public async Task Arm_DiskPublished_WritesBlkbackNodes()
    {
        var (rig, _) = await StartRig();
        await using var __ = rig;
        var store = rig.Emulator.Store;
        var be = rig.Frontends[0].BackendPath;
        Assert.Multiple(() =>
        {
            Assert.That(store.Read(be + "/hotplug-status"), Is.EqualTo("connected"));
            Assert.That(store.Read(be + "/physical-sector-size"), Is.EqualTo("512"));
            Assert.That(store.Read(be + "/sectors"), Is.EqualTo(DiskSectors.ToString(System.Globalization.CultureInfo.InvariantCulture)));
            Assert.That(store.Read(be + "/discard-granularity"), Is.EqualTo(store.Read(be + "/feature-discard") == "1" ? "512" : null));
        });
    }

    [TestCase("r", true)]
    [TestCase("ro", true)]
    [TestCase("w", false)]
    [TestCase("rw", false)]
    public async Task Mode_AsBlkback_ReadOnlyUnlessItContainsW(string mode, bool readOnly)
    {
        var (rig, _) = await StartRig();
        await using var __ = rig;
        var store = rig.Emulator.Store;
        var guest = rig.Emulator.CreateDomain("moded");
        var paths = XenbusDevices.CreateVbd(store, guest.Id, 0, 51728, "m");
        WaitForBackend(rig, paths.BackendPath, XenbusState.InitWait);
        // The mode is read when the device is armed: re-arm through a reconnect cycle with the new mode.
        store.Write(paths.BackendPath + "/mode", mode);
        XenbusDevices.WriteState(store, paths.FrontendPath, XenbusState.Closed);
        WaitForBackend(rig, paths.BackendPath, XenbusState.Closed);
        XenbusDevices.WriteState(store, paths.FrontendPath, XenbusState.Initialising);
        WaitForBackend(rig, paths.BackendPath, XenbusState.InitWait);
        var front = new BlkFront(rig.Emulator, guest, 51728);
        await Waits.For(front.ConnectAsync(), "the handshake");
        Assert.That(front.IsReadOnly, Is.EqualTo(readOnly));
        var status = await front.WriteAsync(0, new byte[512]);
        Assert.That(status, Is.EqualTo(readOnly ? BlkifStatus.Error : BlkifStatus.Okay));
        front.Dispose();
    }

    [Test]
    public async Task Frontend_ClosedThenInitialising_ReconnectsWithAFreshSession()
    {
        var (rig, diagnostics) = await StartRig();
        await using var _ = rig;
        var first = rig.Frontends[0];
        await AssertHealthy(first, 0x11);
        await Waits.For(first.DisconnectAsync(), "the disconnect");
        WaitForBackend(rig, first.BackendPath, XenbusState.Closed);
        Assert.That(Waits.OnLoop(rig.Runtime, () => rig.Runtime.Sessions.Count), Is.Zero, "the session closed before the backend wrote Closed");

        // The guest's driver comes back (Initialising); the backend prepares for reconnect (InitWait).
        XenbusDevices.WriteState(rig.Emulator.Store, first.FrontendPath, XenbusState.Initialising);
        WaitForBackend(rig, first.BackendPath, XenbusState.InitWait);
        var again = new BlkFront(rig.Emulator, first.Domain, first.DeviceId);
        await Waits.For(again.ConnectAsync(), "the reconnect");
        Assert.That(diagnostics.Any(d => d.Message.Contains("reconnecting", StringComparison.Ordinal)), Is.True);
        await AssertHealthy(again, 0x22);
        again.Dispose();
    }

    [Test]
    public async Task Frontend_ClosedWhileOffline_DoesNotReconnect()
    {
        var (rig, _) = await StartRig();
        await using var __ = rig;
        var first = rig.Frontends[0];
        var store = rig.Emulator.Store;
        store.Write(first.BackendPath + "/online", "0");
        await Waits.For(first.DisconnectAsync(), "the disconnect");
        WaitForBackend(rig, first.BackendPath, XenbusState.Closed);
        XenbusDevices.WriteState(store, first.FrontendPath, XenbusState.Initialising);
        Waits.Quiesce(rig.Emulator, rig.Runtime); // the backend has seen Initialising and done all it will do
        Assert.That(XenbusDevices.ReadState(store, first.BackendPath), Is.EqualTo(XenbusState.Closed));
    }
}
