using System.Collections.Concurrent;
using BlkTap.Emulator;
using NUnit.Framework;

namespace BlkTap.Emulator.Tests;

/// <summary>
/// A frontend that spoils its multi-queue keys between writing them and the backend reading them (more queues than
/// offered, none, a bad ring-ref or event-channel under one queue, an ungranted ring page of a later queue): the
/// backend closes that device with the reason in <c>hotplug-error</c> and a diagnostic, leaves no ring of the other
/// queues mapped, and keeps serving the other guest. Deterministic rigs: each interleaving is fixed by the seed.
/// </summary>
[TestFixture]
public sealed class MultiQueueHostileTests
{
    private const int DeviceId = 51728;
    private const int Offered = 2;

    public static IEnumerable<TestCaseData> Spoils()
    {
        yield return new TestCaseData("multi-queue-num-queues", "3", "multi-queue-num-queues '3' is not a number from 1 to multi-queue-max-queues (2)").SetName("Connect_MoreQueuesThanOffered_DeviceClosedWithReason");
        yield return new TestCaseData("multi-queue-num-queues", "0", "multi-queue-num-queues '0' is not a number from 1 to").SetName("Connect_ZeroQueues_DeviceClosedWithReason");
        yield return new TestCaseData("multi-queue-num-queues", "two", "multi-queue-num-queues 'two' is not a number").SetName("Connect_QueueCountNotANumber_DeviceClosedWithReason");
        yield return new TestCaseData("queue-1/ring-ref", "eight", "queue-1/ring-ref 'eight' is not a grant reference").SetName("Connect_QueueRingRefNotANumber_DeviceClosedWithReason");
        yield return new TestCaseData("queue-1/ring-ref", null, "queue-1/ring-ref '(missing)' is not a grant reference").SetName("Connect_QueueRingRefMissing_DeviceClosedWithReason");
        yield return new TestCaseData("queue-1/ring-ref", "4000", "queue 1: cannot map ring grant(s) 4000: NotGranted").SetName("Connect_QueueRingRefNotGranted_DeviceClosedAndQueueZeroUnmapped");
        yield return new TestCaseData("queue-0/event-channel", "port", "queue-0/event-channel 'port' is not a port number").SetName("Connect_QueueEventChannelNotANumber_DeviceClosedWithReason");
        yield return new TestCaseData("queue-1/event-channel", "999", "cannot bind queue 1's event channel 999").SetName("Connect_QueueEventChannelUnbound_DeviceClosedWithReason");
    }

    [TestCaseSource(nameof(Spoils))]
    public async Task Connect_SpoiledQueueKey_DeviceClosedWithDiagnosticNotACrash(string key, string? value, string reason)
    {
        var diagnostics = new ConcurrentQueue<TapDiagnostic>();
        await using var rig = await EmulatorRig.StartAsync(new EmulatorRigOptions
        {
            Frontends = 1,
            Deterministic = true,
            Seed = key.Length + (value?.Length ?? 0),
            Diagnostics = diagnostics.Enqueue,
            Backend = new XenbusBackendOptions { MaxQueues = Offered },
            ConfigureFrontend = (_, o) => o.MaxQueues = Offered,
        }, runtime =>
        {
            var serve = new BlockDeviceHook(_ => new MemoryBlockDevice(1L << 20));
            runtime.RegisterControlHook("mem", serve);
            runtime.RegisterRequestHook("mem", serve);
        });
        var store = rig.Emulator.Store;
        int mappings = rig.Emulator.MappingCount; // the honest guest's rings
        var guest = rig.Emulator.CreateDomain("spoiler");
        var paths = XenbusDevices.CreateVbd(store, guest.Id, 0, DeviceId, "spoiled-disk");
        var front = new BlkFront(rig.Emulator, guest, DeviceId, new BlkFrontOptions { MaxRingPageOrder = 0, MaxQueues = Offered });
        var connect = front.ConnectAsync();
        Assert.That(rig.Emulator.RunUntil(() => XenbusDevices.ReadState(store, paths.FrontendPath) == XenbusState.Initialised), Is.True);
        Assert.That(XenbusDevices.ReadState(store, paths.BackendPath), Is.EqualTo(XenbusState.InitWait), "the backend has not connected yet");
        Assert.That(front.QueueCount, Is.EqualTo(Offered));
        if (value == null) store.Remove($"{paths.FrontendPath}/{key}");
        else store.Write($"{paths.FrontendPath}/{key}", value);
        Assert.That(rig.Emulator.RunUntil(() => connect.IsCompleted), Is.True, "the handshake went idle without an outcome");

        var error = Assert.Throws<BlkFrontException>(() => connect.GetAwaiter().GetResult())!;
        Assert.That(error.Message, Does.Contain(reason));
        Assert.That(store.Read(paths.BackendPath + "/hotplug-error"), Does.Contain(reason));
        Assert.That(store.Read(paths.BackendPath + "/hotplug-status"), Is.EqualTo("error"));
        Assert.That(diagnostics.Select(d => d.ToString()), Has.Some.Contains(reason));
        Assert.That(rig.Emulator.MappingCount, Is.EqualTo(mappings), "a ring of the spoiled device stays mapped");
        Assert.That(rig.Emulator.Faults, Is.Empty);

        // The other guest does not notice.
        var data = new byte[4096];
        new Random(5).NextBytes(data);
        var honest = rig.Frontends[0];
        BlkifStatus written = BlkifStatus.Error, read = BlkifStatus.Error;
        var back = new byte[4096];
        await rig.Execute(async () => { written = await honest.WriteAsync(8, data); read = await honest.ReadAsync(8, back); });
        Assert.That((written, read), Is.EqualTo((BlkifStatus.Okay, BlkifStatus.Okay)));
        Assert.That(back, Is.EqualTo(data));
        front.Dispose();
    }
}
