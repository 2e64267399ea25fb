using System.Collections.Concurrent;
using BlkTap.Emulator;
using NUnit.Framework;

namespace BlkTap.Xen.Tests.Backend;

/// <summary>
/// A backend that closes a device says why where the other side can see it: <c>hotplug-error</c> (and
/// <c>hotplug-status</c>=error) in the backend directory, written before Closed, and the emulator's blkfront
/// puts that reason in its exception. Deterministic rigs: each interleaving is fixed by the seed.
/// </summary>
[TestFixture]
public sealed class XenbusCloseReasonTests
{
    private const int DiskSectors = 2048;
    private const int DeviceId = 51728;

    private static Task<EmulatorRig> StartRig(int seed, ConcurrentQueue<TapDiagnostic> diagnostics) =>
        EmulatorRig.StartAsync(new EmulatorRigOptions { Frontends = 1, Deterministic = true, Seed = seed, Diagnostics = diagnostics.Enqueue }, runtime =>
        {
            var serve = new BlockDeviceHook(_ => new MemoryBlockDevice(DiskSectors * 512L));
            runtime.RegisterControlHook("mem", serve);
            runtime.RegisterRequestHook("mem", serve);
        });

    private static BlkFrontException ConnectFails(EmulatorRig rig, BlkFront front)
    {
        var connect = front.ConnectAsync();
        Assert.That(rig.Emulator.RunUntil(() => connect.IsCompleted), Is.True, "the handshake went idle without an outcome");
        return Assert.Throws<BlkFrontException>(() => connect.GetAwaiter().GetResult())!;
    }

    [TestCase(1)]
    [TestCase(2)]
    [TestCase(3)]
    public async Task Connect_ToolstackWroteNoMode_ExceptionAndHotplugErrorNameTheReason(int seed)
    {
        var diagnostics = new ConcurrentQueue<TapDiagnostic>();
        await using var rig = await StartRig(seed, diagnostics);
        var store = rig.Emulator.Store;
        var guest = rig.Emulator.CreateDomain("modeless");
        var paths = XenbusDevices.CreateVbd(store, guest.Id, 0, DeviceId, "modeless-disk");
        store.Remove(paths.BackendPath + "/mode"); // nothing ran yet: the backend never sees a mode

        var error = ConnectFails(rig, new BlkFront(rig.Emulator, guest, DeviceId));

        const string reason = "the toolstack wrote no 'mode' node";
        Assert.That(error.Message, Does.Match("the backend went to Clos(ed|ing) before connecting: " + reason));
        Assert.That(store.Read(paths.BackendPath + "/hotplug-error"), Does.StartWith(reason));
        Assert.That(store.Read(paths.BackendPath + "/hotplug-status"), Is.EqualTo("error"));
        Assert.That(XenbusDevices.ReadState(store, paths.BackendPath), Is.EqualTo(XenbusState.Closed));
    }

    [TestCase(1)]
    [TestCase(2)]
    [TestCase(3)]
    public async Task Connect_RingRefCorruptedBeforeTheBackendReadsIt_ExceptionAndHotplugErrorNameTheReason(int seed)
    {
        var diagnostics = new ConcurrentQueue<TapDiagnostic>();
        await using var rig = await StartRig(seed, diagnostics);
        var store = rig.Emulator.Store;
        var guest = rig.Emulator.CreateDomain("corrupt");
        var paths = XenbusDevices.CreateVbd(store, guest.Id, 0, DeviceId, "corrupt-disk");
        var front = new BlkFront(rig.Emulator, guest, DeviceId, new BlkFrontOptions { MaxRingPageOrder = 0, MaxQueues = 1 }); // the top-level ring-ref
        var connect = front.ConnectAsync();

        // Step until the frontend has published its ring (one scheduler step writes ring-ref ... state), then
        // spoil the grant reference before the backend's loop reads it.
        Assert.That(rig.Emulator.RunUntil(() => XenbusDevices.ReadState(store, paths.FrontendPath) == XenbusState.Initialised), Is.True);
        Assert.That(XenbusDevices.ReadState(store, paths.BackendPath), Is.EqualTo(XenbusState.InitWait), "the backend has not connected yet");
        store.Write(paths.FrontendPath + "/ring-ref", "eight");
        Assert.That(rig.Emulator.RunUntil(() => connect.IsCompleted), Is.True, "the handshake went idle without an outcome");

        var error = Assert.Throws<BlkFrontException>(() => connect.GetAwaiter().GetResult())!;
        const string reason = "ring-ref 'eight' is not a grant reference";
        Assert.That(error.Message, Does.Match("the backend went to Clos(ed|ing) before connecting: .*" + reason));
        Assert.That(front.BrokenReason, Does.Contain(reason));
        Assert.That(store.Read(paths.BackendPath + "/hotplug-error"), Does.Contain(reason));
        Assert.That(store.Read(paths.BackendPath + "/hotplug-status"), Is.EqualTo("error"));
    }

    [Test]
    public async Task Reconnect_AfterAFailure_HotplugErrorRemovedAndStatusConnected()
    {
        var diagnostics = new ConcurrentQueue<TapDiagnostic>();
        await using var rig = await StartRig(4, diagnostics);
        var store = rig.Emulator.Store;
        var guest = rig.Emulator.CreateDomain("retry");
        var paths = XenbusDevices.CreateVbd(store, guest.Id, 0, DeviceId, "retry-disk");
        store.Remove(paths.BackendPath + "/mode");
        var broken = new BlkFront(rig.Emulator, guest, DeviceId);
        ConnectFails(rig, broken);
        broken.Dispose();
        rig.Emulator.RunUntilIdle();
        Assert.That(store.Read(paths.BackendPath + "/hotplug-error"), Is.Not.Null);

        // The toolstack fixes the device; the guest's driver comes back (Initialising); the backend re-arms.
        store.Write(paths.BackendPath + "/mode", "w");
        XenbusDevices.WriteState(store, paths.FrontendPath, XenbusState.Initialising);
        Assert.That(rig.Emulator.RunUntil(() => XenbusDevices.ReadState(store, paths.BackendPath) == XenbusState.InitWait), Is.True, "the backend re-arms");
        var again = new BlkFront(rig.Emulator, guest, DeviceId);
        await rig.Execute(() => again.ConnectAsync());

        Assert.That(store.Read(paths.BackendPath + "/hotplug-error"), Is.Null);
        Assert.That(store.Read(paths.BackendPath + "/hotplug-status"), Is.EqualTo("connected"));
        again.Dispose();
    }

    [Test]
    public async Task Dispose_BackendShutsDown_ConnectedFrontendSeesTheReason()
    {
        var diagnostics = new ConcurrentQueue<TapDiagnostic>();
        await using var rig = await StartRig(5, diagnostics);
        var front = rig.Frontends[0];
        var store = rig.Emulator.Store;
        rig.Backend.Dispose();
        rig.Emulator.RunUntilIdle();

        Assert.That(XenbusDevices.ReadState(store, front.BackendPath), Is.EqualTo(XenbusState.Closed));
        Assert.That(store.Read(front.BackendPath + "/hotplug-error"), Is.EqualTo("backend shutting down"));
        Assert.That(store.Read(front.BackendPath + "/hotplug-status"), Is.EqualTo("connected"), "a shutdown is not a hotplug failure");
        Assert.That(front.IsConnected, Is.False);
    }
}
