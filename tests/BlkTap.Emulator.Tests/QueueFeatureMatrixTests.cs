using BlkTap.Emulator;
using BlkTap.Testing;
using NUnit.Framework;

namespace BlkTap.Emulator.Tests;

/// <summary>
/// Persistent grants and multi-queue (blkif.h <c>feature-persistent</c>, <c>multi-queue-max-queues</c> /
/// <c>multi-queue-num-queues</c>), negotiated between the emulator's <see cref="BlkFront"/> and the
/// <see cref="XenbusBlockBackend"/> with either side lacking either feature: the data still lands where a model disk
/// says, both ends agree on what was negotiated, the xenstore keys are the ones Linux's drivers read, persistent
/// grants cost no map or unmap at steady state, and nothing stays mapped after a disconnect.
/// </summary>
[TestFixture]
public sealed class QueueFeatureMatrixTests
{
    private const long DiskBytes = 4L << 20;

    private static Task<EmulatorRig> StartRig(bool frontPersistent, bool backPersistent, int frontQueues, int backQueues, int guests = 2,
        Action<TapRuntime>? extra = null) =>
        EmulatorRig.StartAsync(new EmulatorRigOptions
        {
            Frontends = guests,
            RandomFirstSector = true,
            Backend = new XenbusBackendOptions { FeaturePersistent = backPersistent, MaxQueues = backQueues },
            ConfigureFrontend = (_, o) => { o.PersistentGrants = frontPersistent; o.MaxQueues = frontQueues; },
        }, rt =>
        {
            extra?.Invoke(rt);
            var mem = new BlockDeviceHook(_ => new MemoryBlockDevice(DiskBytes));
            rt.RegisterControlHook("mem", mem);
            rt.RegisterRequestHook("mem", mem);
        });

    [Test]
    public async Task Rig_EitherSideWithOrWithoutEachFeature_NegotiatesAndMatchesModel(
        [Values] bool frontPersistent, [Values] bool backPersistent, [Values(1, 4)] int frontQueues, [Values(1, 3)] int backQueues)
    {
        await using var rig = await StartRig(frontPersistent, backPersistent, frontQueues, backQueues);
        bool persistent = frontPersistent && backPersistent;
        int queues = Math.Min(frontQueues, backQueues);
        var store = rig.Emulator.Store;
        foreach (var front in rig.Frontends)
        {
            Assert.That(front.UsesPersistentGrants, Is.EqualTo(persistent), "frontend: persistent grants");
            Assert.That(front.QueueCount, Is.EqualTo(queues), "frontend: queues");
            Assert.That(store.Read(front.BackendPath + "/feature-persistent"), Is.EqualTo(backPersistent ? "1" : "0"));
            Assert.That(store.Read(front.FrontendPath + "/feature-persistent"), Is.EqualTo(frontPersistent ? "1" : "0"));
            Assert.That(store.Read(front.BackendPath + "/multi-queue-max-queues"), Is.EqualTo(backQueues.ToString()));
            string ringKey = front.RingPageOrder == 0 ? "ring-ref" : "ring-ref0";
            if (queues == 1)
            {
                Assert.That(store.Read(front.FrontendPath + "/multi-queue-num-queues"), Is.Null, "one queue: no multi-queue-num-queues");
                Assert.That(store.Read(front.FrontendPath + "/" + ringKey), Is.Not.Null, "one queue: the top-level ring keys");
                Assert.That(store.Read(front.FrontendPath + "/event-channel"), Is.Not.Null);
            }
            else
            {
                Assert.That(store.Read(front.FrontendPath + "/multi-queue-num-queues"), Is.EqualTo(queues.ToString()));
                Assert.That(store.Read(front.FrontendPath + "/" + ringKey), Is.Null, "N queues: no top-level ring-ref");
                Assert.That(store.Read(front.FrontendPath + "/event-channel"), Is.Null, "N queues: no top-level event-channel");
                for (int q = 0; q < queues; q++)
                {
                    Assert.That(store.Read($"{front.FrontendPath}/queue-{q}/{ringKey}"), Is.Not.Null, $"queue-{q}/{ringKey}");
                    Assert.That(store.Read($"{front.FrontendPath}/queue-{q}/event-channel"), Is.Not.Null, $"queue-{q}/event-channel");
                }
            }
        }
        var sessions = Waits.OnLoop(rig.Runtime, () => rig.Backend.Sessions.Values.Select(s => (s.QueueCount, s.PersistentGrants)).ToArray());
        Assert.That(sessions, Has.Length.EqualTo(rig.Frontends.Count));
        Assert.That(sessions, Is.All.EqualTo((queues, persistent)), "backend: (queues, persistent grants) per device");

        int seed = (frontPersistent ? 1 : 0) + (backPersistent ? 2 : 0) + frontQueues * 4 + backQueues * 16;
        await Task.WhenAll(rig.Frontends.Select((f, i) => ModelWorkload.RunAsync(f, DiskBytes, seed * 31 + i, operations: 120, workers: 8)));

        long[] perQueue = Waits.OnLoop(rig.Runtime, () => rig.Backend.Sessions.Values.SelectMany(s => s.Rings.Select(r => (long)r.RequestConsumer)).ToArray());
        Assert.That(perQueue, Has.Length.EqualTo(queues * rig.Frontends.Count));
        Assert.That(perQueue, Is.All.GreaterThan(0L), "requests are spread over every ring");
    }

    [TestCase(true)]
    [TestCase(false)]
    public async Task Rig_SteadyState_GrantOperationsPerRequestZeroOnlyWithPersistentGrants(bool persistent)
    {
        await using var rig = await StartRig(persistent, persistent, frontQueues: 2, backQueues: 2);
        var front = rig.Frontends[0];
        await ModelWorkload.RunAsync(front, DiskBytes, 7, operations: 100, workers: 8); // warm: the pools fill
        // A grant is mapped persistently the first time the frontend needs more pages at once than ever before; steady
        // state is a round with none of that, which a few rounds reach (the last one is asserted regardless).
        double perRequest = double.NaN;
        for (int round = 0; round < 8; round++)
        {
            long ops = rig.Emulator.MapOperations + rig.Emulator.UnmapOperations;
            long requests = front.RequestsSubmitted;
            await ModelWorkload.RunAsync(front, DiskBytes, 100 + round, operations: 100, workers: 8);
            perRequest = (rig.Emulator.MapOperations + rig.Emulator.UnmapOperations - ops) / (double)(front.RequestsSubmitted - requests);
            if (!persistent || perRequest == 0) break;
        }
        if (persistent) Assert.That(perRequest, Is.Zero, "grant map and unmap operations per request at steady state");
        else Assert.That(perRequest, Is.GreaterThanOrEqualTo(2.0), "without persistent grants each request maps and unmaps its pages");
    }

    [Test]
    public async Task Disconnect_PersistentGrantsOnSeveralRings_NoMappingLeft()
    {
        await using var rig = await StartRig(true, true, frontQueues: 3, backQueues: 3);
        await Task.WhenAll(rig.Frontends.Select((f, i) => ModelWorkload.RunAsync(f, DiskBytes, 40 + i, operations: 80, workers: 8)));
        Assert.That(Waits.OnLoop(rig.Runtime, () => rig.Backend.Sessions.Values.Sum(s => s.PersistentGrantCount)), Is.GreaterThan(0), "grants are kept mapped while connected");

        await Waits.For(Task.WhenAll(rig.Frontends.Select(f => f.DisconnectAsync())), "the disconnects");
        Waits.ForStore(rig.Emulator.Store, () => Waits.OnLoop(rig.Runtime, () => rig.Backend.Sessions.Count) == 0, "the backend closing its sessions");
        Waits.Quiesce(rig.Emulator, rig.Runtime);

        Assert.That(rig.Emulator.MappingCount, Is.Zero, "mappings left after disconnect");
        foreach (var f in rig.Frontends)
        {
            Assert.That(f.Domain.Grants.ActiveCount, Is.Zero, $"{f.FrontendPath}: grants left");
            Assert.That(f.Domain.EventChannels.Count, Is.Zero, $"{f.FrontendPath}: event channels left");
        }
        Assert.That(rig.Emulator.Dom0.EventChannels.Count, Is.Zero, "backend event channels left");
    }

    [Test]
    public async Task Disconnect_WhileAStolenRequestUsesPersistentPages_UnmappedWhenItCompletes()
    {
        var stolen = new TaskCompletionSource<TapRequest>(TaskCreationOptions.RunContinuationsAsynchronously);
        bool steal = false;
        await using var rig = await StartRig(true, true, frontQueues: 2, backQueues: 2, guests: 1, extra: rt =>
            rt.RegisterRequestHook("steal", Hook.Request(r =>
            {
                if (!Volatile.Read(ref steal) || r.Operation != BlkifOperation.Write) return HookResult.Pass;
                stolen.TrySetResult(r);
                return HookResult.Stolen;
            })));
        var front = rig.Frontends[0];
        await ModelWorkload.RunAsync(front, DiskBytes, 3, operations: 40, workers: 4);
        Volatile.Write(ref steal, true);
        var pending = front.WriteAsync(0, new byte[4096]);
        var request = await Waits.For(stolen.Task, "the stolen write");

        var disconnect = front.DisconnectAsync();
        Waits.ForStore(rig.Emulator.Store, () => Waits.OnLoop(rig.Runtime, () => rig.Backend.Sessions.Count) == 0, "the backend closing the session");
        Waits.Quiesce(rig.Emulator, rig.Runtime);
        Assert.That(rig.Emulator.MappingCount, Is.GreaterThan(0), "the stolen write's ring keeps its persistent grants mapped");

        rig.Runtime.InjectResponse(request, BlkifStatus.Okay);
        Waits.Quiesce(rig.Emulator, rig.Runtime);
        Assert.That(rig.Emulator.MappingCount, Is.Zero, "the last request of the closed ring gave its grants back");
        await Waits.For(disconnect, "the disconnect");
        Assert.That(async () => await pending, Throws.InstanceOf<BlkFrontException>(), "the write was failed by the disconnect");
    }
}
