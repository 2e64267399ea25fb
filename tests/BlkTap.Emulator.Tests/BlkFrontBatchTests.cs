using BlkTap.Emulator;
using BlkTap.Testing;
using NUnit.Framework;

namespace BlkTap.Emulator.Tests;

/// <summary><see cref="BlkFront.SubmitBatch"/>: requests as values, completions through a callback on the scheduler.</summary>
[TestFixture]
[NonParallelizable]
public class BlkFrontBatchTests
{
    private sealed class Collector : IBlkFrontBatchCompletion
    {
        public readonly List<(long Token, BlkifStatus Status, bool Failed)> Done = new();
        public readonly SemaphoreSlim Signal = new(0);
        public Action<BlkFront, long>? Then;
        public int OffScheduler;

        public void OnCompleted(BlkFront front, long token, BlkifStatus status, bool frontendFailed)
        {
            if (!front.Domain.Emulator.IsSchedulerThread) Interlocked.Increment(ref OffScheduler);
            lock (Done) Done.Add((token, status, frontendFailed));
            Then?.Invoke(front, token);
            Signal.Release();
        }

        public int Count { get { lock (Done) return Done.Count; } }
    }

    private static Task<EmulatorRig> Start(bool randomFirstSector = true) =>
        EmulatorRig.StartAsync(new EmulatorRigOptions { Frontends = 1, RandomFirstSector = randomFirstSector }, rt =>
        {
            var mem = new BlockDeviceHook(_ => new MemoryBlockDevice(8L << 20));
            rt.RegisterControlHook("mem", mem);
            rt.RegisterRequestHook("mem", mem);
        });

    private static void OnScheduler(EmulatorRig rig, Action work) => Waits.OnScheduler(rig.Emulator, work);

    [Test]
    public async Task SubmitBatch_OffTheScheduler_Throws()
    {
        await using var rig = await Start();
        var front = rig.Frontends[0];
        var buffer = new byte[512];
        Assert.Throws<InvalidOperationException>(() => front.SubmitBatch([new BlkFrontBatchRequest(BlkFrontBatchOperation.Read, 0, buffer, 0, 1)], new Collector()));
    }

    [Test]
    public async Task SubmitBatch_MoreRequestsThanRingSlots_EveryRequestCompletesWithItsData()
    {
        await using var rig = await Start();
        var front = rig.Frontends[0];
        const int count = 100; // the ring has 32 slots, and 48 KiB requests take two ring requests each
        var written = new byte[count][];
        var writes = new BlkFrontBatchRequest[count];
        for (int i = 0; i < count; i++)
        {
            written[i] = new byte[(i % 3 == 0 ? 96 : 1 + i % 8) * 512];
            new Random(i).NextBytes(written[i]);
            writes[i] = new BlkFrontBatchRequest(BlkFrontBatchOperation.Write, (ulong)i * 100, written[i], 0, i);
        }
        var collector = new Collector();
        OnScheduler(rig, () => front.SubmitBatch(writes, collector));
        Waits.ForSignal(collector.Signal, () => collector.Count == count, "every write completing");
        Assert.That(collector.Done.All(d => d.Status == BlkifStatus.Okay && !d.Failed), Is.True);
        Assert.That(collector.OffScheduler, Is.EqualTo(0), "completions run on the scheduler");
        Assert.That(collector.Done.Select(d => d.Token).Order(), Is.EqualTo(Enumerable.Range(0, count).Select(i => (long)i)));

        var read = written.Select(w => new byte[w.Length]).ToArray();
        var reads = Enumerable.Range(0, count).Select(i => new BlkFrontBatchRequest(BlkFrontBatchOperation.Read, (ulong)i * 100, read[i], 0, i)).ToArray();
        var readBack = new Collector();
        OnScheduler(rig, () => front.SubmitBatch(reads, readBack));
        Waits.ForSignal(readBack.Signal, () => readBack.Count == count, "every read completing");
        Assert.That(readBack.Done.All(d => d.Status == BlkifStatus.Okay), Is.True);
        for (int i = 0; i < count; i++) Assert.That(read[i], Is.EqualTo(written[i]), $"request {i}");
    }

    [Test]
    public async Task SubmitBatch_ReadUncopied_BackendServesItAndTheStatusComesBack()
    {
        // A request hook ahead of mem counts the reads it is given, with their lengths: the uncopied reads reach the
        // backend as ordinary reads of SectorCount sectors (one or two ring requests each).
        long sectorsRead = 0;
        int readRequests = 0;
        await using var rig = await EmulatorRig.StartAsync(new EmulatorRigOptions { Frontends = 1, RandomFirstSector = true }, rt =>
        {
            rt.RegisterRequestHook("count", new CountingHook(r =>
            {
                if (r.Operation != BlkifOperation.Read) return;
                Interlocked.Increment(ref readRequests);
                Interlocked.Add(ref sectorsRead, r.ByteCount / 512);
            }));
            var mem = new BlockDeviceHook(_ => new MemoryBlockDevice(8L << 20));
            rt.RegisterControlHook("mem", mem);
            rt.RegisterRequestHook("mem", mem);
        });
        var front = rig.Frontends[0];
        ulong diskSectors = (8UL << 20) / 512;
        var requests = new BlkFrontBatchRequest[]
        {
            new(BlkFrontBatchOperation.ReadUncopied, 0, default, 8, 1),
            new(BlkFrontBatchOperation.ReadUncopied, 1000, default, 96, 2),           // 48 KiB: two ring requests
            new(BlkFrontBatchOperation.ReadUncopied, diskSectors - 4, default, 8, 3), // runs past the end
            new(BlkFrontBatchOperation.ReadUncopied, 0, default, 0, 4),               // nothing to read
        };
        var collector = new Collector();
        long before = front.RequestsSubmitted;
        OnScheduler(rig, () => front.SubmitBatch(requests, collector));
        Waits.ForSignal(collector.Signal, () => collector.Count == requests.Length, "every uncopied read completing");
        var byToken = collector.Done.ToDictionary(d => d.Token, d => d.Status);
        Assert.That(byToken[1], Is.EqualTo(BlkifStatus.Okay));
        Assert.That(byToken[2], Is.EqualTo(BlkifStatus.Okay));
        Assert.That(byToken[3], Is.EqualTo(BlkifStatus.Error), "a read past the end fails as a copied one does");
        Assert.That(byToken[4], Is.EqualTo(BlkifStatus.Okay));
        Assert.That(front.RequestsSubmitted - before, Is.EqualTo(4), "8 sectors, 96 sectors in two parts, the read past the end");
        long served = Waits.OnLoop(rig.Runtime, () => Interlocked.Read(ref sectorsRead));
        Assert.That(served, Is.EqualTo(8 + 96), "the backend read exactly the sectors asked for (the failed one is rejected before any hook)");
    }

    [Test]
    public async Task SubmitBatch_ReadUncopiedWithABuffer_Throws()
    {
        await using var rig = await Start();
        var front = rig.Frontends[0];
        var buffer = new byte[4096];
        Assert.Throws<ArgumentException>(() => OnScheduler(rig, () =>
            front.SubmitBatch([new BlkFrontBatchRequest(BlkFrontBatchOperation.ReadUncopied, 0, buffer, 8, 1)], new Collector())));
    }

    private sealed class CountingHook(Action<TapRequest> seen) : IRequestHook
    {
        public HookResult OnRequest(TapRequest request)
        {
            seen(request);
            return HookResult.Pass;
        }
    }

    [Test]
    public async Task SubmitBatch_AfterDisconnect_CompletesAtOnceWithFrontendFailure()
    {
        await using var rig = await Start();
        var front = rig.Frontends[0];
        await Waits.For(front.DisconnectAsync(), "the disconnect");
        var collector = new Collector();
        var buffer = new byte[4096];
        OnScheduler(rig, () =>
        {
            front.SubmitBatch([new BlkFrontBatchRequest(BlkFrontBatchOperation.Read, 0, buffer, 0, 7), new BlkFrontBatchRequest(BlkFrontBatchOperation.Flush, 0, default, 0, 8)], collector);
            Assert.That(collector.Count, Is.EqualTo(2), "answered before SubmitBatch returned");
        });
        Assert.That(collector.Done, Is.EqualTo(new[] { (7L, BlkifStatus.Error, true), (8L, BlkifStatus.Error, true) }));
    }

    [Test]
    public async Task SubmitBatch_EmptyAndUnofferedRequests_AnsweredWithoutTheRing()
    {
        await using var rig = await Start();
        var front = rig.Frontends[0];
        var collector = new Collector();
        long before = front.RequestsSubmitted;
        OnScheduler(rig, () => front.SubmitBatch([
            new BlkFrontBatchRequest(BlkFrontBatchOperation.Read, 0, Memory<byte>.Empty, 0, 1),
            new BlkFrontBatchRequest(BlkFrontBatchOperation.Discard, 0, default, 0, 2)], collector));
        Assert.That(collector.Done, Is.EqualTo(new[] { (1L, BlkifStatus.Okay, false), (2L, BlkifStatus.Okay, false) }));
        Assert.That(front.RequestsSubmitted, Is.EqualTo(before));
    }

    [Test]
    public async Task SubmitBatch_SteadyClosedLoop_SchedulerAllocatesOnlyTheGrantEntry()
    {
        // Page-aligned 4 KiB requests: one segment, so one grant each.
        await using var rig = await Start(randomFirstSector: false);
        var front = rig.Frontends[0];
        const int depth = 16;
        var buffers = Enumerable.Range(0, depth).Select(_ => new byte[4096]).ToArray();
        long target = 0, submitted = 0;
        var collector = new Collector();
        var one = new BlkFrontBatchRequest[1];
        collector.Then = (f, token) =>
        {
            if (submitted >= Volatile.Read(ref target)) return;
            submitted++;
            var op = submitted % 2 == 0 ? BlkFrontBatchOperation.Read : BlkFrontBatchOperation.Write;
            one[0] = new BlkFrontBatchRequest(op, (ulong)(submitted * 8 % 16000), buffers[token], 0, token);
            f.SubmitBatch(one, collector);
        };
        long Allocated()
        {
            long bytes = 0;
            OnScheduler(rig, () => bytes = GC.GetAllocatedBytesForCurrentThread());
            return bytes;
        }
        async Task Round(long requests)
        {
            int start = collector.Count;
            Volatile.Write(ref target, submitted + requests);
            OnScheduler(rig, () =>
            {
                var batch = Enumerable.Range(0, depth).Select(i => new BlkFrontBatchRequest(BlkFrontBatchOperation.Write, (ulong)i * 8, buffers[i], 0, i)).ToArray();
                submitted += depth;
                front.SubmitBatch(batch, collector);
            });
            Waits.ForSignal(collector.Signal, () => collector.Count - start >= requests, "a round of requests");
            await Task.Yield();
        }
        await Round(20_000); // warm: the operation pool, grant tables, tiered JIT
        lock (collector.Done) collector.Done.Clear();
        collector.Done.Capacity = 50_000;
        long before = Allocated();
        await Round(40_000);
        long after = Allocated();
        TestContext.Out.WriteLine($"scheduler thread allocated {after - before} bytes for 40000 batch requests");
        // What is left is the emulator's grant table: GrantTable.GrantAccess allocates one 40-byte GrantEntry per granted
        // page (persistent grants take that away). The batch path itself (the operation pool, the ring, the callback) and
        // the round's own start (a LINQ batch of 16, the probes' closures: a few KiB in all) stay under 8 B a request.
        Assert.That((after - before) / 40_000.0, Is.LessThan(48), $"{after - before} bytes on the scheduler for 40000 requests");
        Assert.That(collector.Done.All(d => d.Status == BlkifStatus.Okay), Is.True);
    }
}
