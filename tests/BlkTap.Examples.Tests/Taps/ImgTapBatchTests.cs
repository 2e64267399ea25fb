using BlkTap.Chains;
using BlkTap.Emulator;
using BlkTap.Examples.Tests.Lanes;
using BlkTap.Storage;
using BlkTap.Testing;
using BlkTap.Testing.Rigs;
using NUnit.Framework;

namespace BlkTap.Examples.Tests.Taps;

/// <summary>
/// <c>img</c>'s in-order batch: on a file in memory each loop pass's reads and writes are gathered and run back to back
/// at the end of the pass. Requests of one pass that overlap must still see each other in ring order, a failing write
/// fails only its own request, and a file that may wait is never batched.
/// </summary>
[NonParallelizable]
public class ImgTapBatchTests
{
    private string _dir = "";

    [SetUp]
    public void SetUp()
    {
        if (!Directory.Exists("/dev/shm")) Assert.Ignore("no /dev/shm");
        _dir = Directory.CreateDirectory(Path.Combine("/dev/shm", "blktap-img-batch-" + Guid.NewGuid().ToString("N"))).FullName;
    }

    [TearDown]
    public void TearDown()
    {
        if (_dir.Length > 0) Directory.Delete(_dir, recursive: true);
    }

    private static string Image(string dir, long bytes) => ImgTestKit.SparseImage(dir, bytes);

    // threads: the loop alone, or with helper threads (img's option threads); sectors: the span the requests fall in
    // (16: most batches are a chain of overlaps, run one stretch after another; 256: long stretches run in parallel).
    [TestCase(1, 16)]
    [TestCase(2, 16)]
    [TestCase(3, 16)]
    [TestCase(2, 256)]
    [TestCase(3, 256)]
    public async Task SubmitBatch_OverlappingReadsAndWritesOnOnePush_EachReadSeesTheWritesBeforeIt(int threads, int sectors)
    {
        var path = Image(_dir, 1L << 20);
        CountingFile? counting = null;
        // With helpers, each write takes a millisecond before it lands, so a read or write that wrongly ran beside it
        // (rather than after it) would finish first and be seen.
        var storage = new WrappingStorage((_, f) => counting = new CountingFile((INoWaitStorageFile)f, failWriteAt: -1, slowWrites: threads > 1));
        var img = new ImgTap(path, readOnly: false, storage, threads: threads);
        var model = new byte[sectors * 512];
        await using (var rig = await Start(img))
        {
            var front = rig.Frontends[0];
            // Property: 40 random sequences of 24 reads and writes over 16 sectors, each put on the ring with one push, so
            // the tap takes them in one pass and its batch holds overlapping writes and reads.
            for (int seed = 0; seed < 40; seed++)
            {
                var random = new Random(seed);
                var requests = new BlkFrontBatchRequest[24];
                var expected = new byte[24][];
                for (int i = 0; i < requests.Length; i++)
                {
                    int first = random.Next(sectors);
                    int count = 1 + random.Next(Math.Min(8, sectors - first));
                    var buffer = new byte[count * 512];
                    if (random.Next(2) == 0)
                    {
                        random.NextBytes(buffer);
                        buffer.CopyTo(model.AsSpan(first * 512));
                        requests[i] = new BlkFrontBatchRequest(BlkFrontBatchOperation.Write, (ulong)first, buffer, 0, i);
                    }
                    else
                    {
                        expected[i] = model.AsSpan(first * 512, count * 512).ToArray();
                        requests[i] = new BlkFrontBatchRequest(BlkFrontBatchOperation.Read, (ulong)first, buffer, 0, i);
                    }
                }
                var collector = new ImgTestKit.BatchCollector();
                OnScheduler(rig, () => front.SubmitBatch(requests, collector));
                Waits.ForSignal(collector.Signal, () => collector.Count == requests.Length, "every request of the batch completing");
                Assert.That(collector.Statuses(), Is.All.EqualTo(BlkifStatus.Okay), $"seed {seed}");
                for (int i = 0; i < requests.Length; i++)
                    if (expected[i] != null)
                        Assert.That(requests[i].Buffer.ToArray(), Is.EqualTo(expected[i]), $"seed {seed}: read {i} sees every write before it and none after");
            }
            Assert.That(BatchedImages(rig, img), Is.EqualTo(1), "the image in /dev/shm is batched");
        }
        img.Dispose();
        Assert.That(counting!.NoWaitCalls, Is.Zero, "a batched file is read and written at the end of the pass, not at once");
        Assert.That(counting.BlockingCalls, Is.GreaterThanOrEqualTo(40 * 24));
        Assert.That(File.ReadAllBytes(path).AsSpan(0, model.Length).ToArray(), Is.EqualTo(model), "the file holds the last write of every sector");
    }

    [TestCase(1)]
    [TestCase(2)]
    public async Task SubmitBatch_OneWriteFailsInTheBatch_OnlyThatRequestAnswersError(int threads)
    {
        var path = Image(_dir, 1L << 20);
        var storage = new WrappingStorage((_, f) => new CountingFile((INoWaitStorageFile)f, failWriteAt: 8 * 512));
        var img = new ImgTap(path, readOnly: false, storage, threads: threads);
        await using (var rig = await Start(img))
        {
            var front = rig.Frontends[0];
            var requests = new BlkFrontBatchRequest[6];
            for (int i = 0; i < requests.Length; i++)
                requests[i] = new BlkFrontBatchRequest(BlkFrontBatchOperation.Write, (ulong)i * 4, Enumerable.Repeat((byte)(i + 1), 2048).ToArray(), 0, i);
            var collector = new ImgTestKit.BatchCollector();
            OnScheduler(rig, () => front.SubmitBatch(requests, collector));
            Waits.ForSignal(collector.Signal, () => collector.Count == requests.Length, "every write of the batch completing");
            var statuses = collector.Statuses();
            Assert.That(statuses[2], Is.EqualTo(BlkifStatus.Error), "the write at sector 8 failed in the file");
            Assert.That(statuses.Where((_, i) => i != 2), Is.All.EqualTo(BlkifStatus.Okay));
            var back = new byte[2048];
            Assert.That(await front.ReadAsync(20, back), Is.EqualTo(BlkifStatus.Okay));
            Assert.That(back, Is.All.EqualTo((byte)6), "the writes after the failed one landed");
        }
        img.Dispose();
    }

    [Test]
    public async Task SubmitBatch_ThreadsTwo_TheHelperRunsPartOfThePass()
    {
        // The first read or write of the pass is held until another has started: only the helper thread can start one
        // then (the loop is the one held, or it starts the next itself while the helper holds the first).
        var path = Image(_dir, 1L << 20);
        var storage = new WrappingStorage((_, f) => new CountingFile((INoWaitStorageFile)f, failWriteAt: -1, holdFirstCall: true));
        var img = new ImgTap(path, readOnly: false, storage, threads: 2);
        await using (var rig = await Start(img))
        {
            var front = rig.Frontends[0];
            var requests = new BlkFrontBatchRequest[8];
            for (int i = 0; i < requests.Length; i++)
                requests[i] = new BlkFrontBatchRequest(BlkFrontBatchOperation.Write, (ulong)i * 8, Enumerable.Repeat((byte)(i + 1), 4096).ToArray(), 0, i);
            var collector = new ImgTestKit.BatchCollector();
            OnScheduler(rig, () => front.SubmitBatch(requests, collector));
            Waits.ForSignal(collector.Signal, () => collector.Count == requests.Length, "every write of the batch completing");
            Assert.That(collector.Statuses(), Is.All.EqualTo(BlkifStatus.Okay), "no call was held past its deadline");
            Assert.That(Waits.OnLoop(rig.Runtime, () => img.HelperOperations), Is.GreaterThan(0));
            for (int i = 0; i < requests.Length; i++)
            {
                var back = new byte[4096];
                Assert.That(await front.ReadAsync((ulong)i * 8, back), Is.EqualTo(BlkifStatus.Okay));
                Assert.That(back, Is.All.EqualTo((byte)(i + 1)), $"write {i} landed");
            }
        }
        img.Dispose();
    }

    [Test]
    public async Task Workload_ImageInMemoryWithHelpers_EqualsModel()
    {
        // Batches between flushes, discards and FUA writes (which go to the image's worker after the batch has run).
        var path = Image(_dir, 8L << 20);
        var img = new ImgTap(path, readOnly: false, threads: 2);
        await using (var rig = await EmulatorRig.StartAsync(new EmulatorRigOptions { Frontends = 3 }, rt => TapChain.Register(rt, [img])))
        {
            var results = await new VerifiedWorkload(new WorkloadOptions { OperationsPerFrontend = 400, DiscardPercent = 5, FlushPercent = 5, Seed = 11 }).RunAsync(rig);
            foreach (var r in results) Assert.That(r.Errors + r.Mismatches, Is.Zero, string.Join("; ", r.Problems));
            Assert.That(BatchedImages(rig, img), Is.EqualTo(1));
        }
        img.Dispose();
    }

    [Test]
    public async Task Workload_ImageOnADisk_NotBatchedAndEqualsModel()
    {
        // The work tree's file system is a disk here; a file that may wait is served at once or by its worker.
        var dir = Directory.CreateTempSubdirectory("blktap-img-batch-").FullName;
        try
        {
            using (var probe = Linux.Storage.LinuxStorageProvider.Shared.Create(Path.Combine(dir, "probe")))
                if (((INoWaitStorageFile)probe).NeverWaits) Assert.Ignore("the temporary directory is in memory here");
            var path = Image(dir, 8L << 20);
            var img = new ImgTap(path, readOnly: false);
            await using (var rig = await Start(img))
            {
                var results = await new VerifiedWorkload(new WorkloadOptions { OperationsPerFrontend = 300, DiscardPercent = 5, FlushPercent = 5, Seed = 3 }).RunAsync(rig);
                foreach (var r in results) Assert.That(r.Errors + r.Mismatches, Is.Zero, string.Join("; ", r.Problems));
                Assert.That(BatchedImages(rig, img), Is.Zero, "a file on a disk is never batched");
            }
            img.Dispose();
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    private static Task<EmulatorRig> Start(ImgTap img) =>
        EmulatorRig.StartAsync(new EmulatorRigOptions { Frontends = 1 }, rt => TapChain.Register(rt, [img]));

    private static int BatchedImages(EmulatorRig rig, ImgTap img) => Waits.OnLoop(rig.Runtime, () => img.BatchedImages);

    private static void OnScheduler(EmulatorRig rig, Action work) => Waits.OnScheduler(rig.Emulator, work);

    /// <summary>
    /// The OS file, saying it never waits as the real one does, counting the calls of each kind; a blocking write that
    /// touches byte <c>failWriteAt</c> throws as a failing device would (-1: none); with <c>slowWrites</c> every
    /// blocking write lands a millisecond late; with <c>holdFirstCall</c> the first blocking call waits for a second.
    /// </summary>
    private sealed class CountingFile(INoWaitStorageFile inner, long failWriteAt, bool holdFirstCall = false, bool slowWrites = false) : INoWaitStorageFile
    {
        public int NoWaitCalls, BlockingCalls;
        private readonly ManualResetEventSlim _second = new();

        // With holdFirstCall: the first blocking call waits (up to the deadline, then fails) until a second has begun.
        private void Hold()
        {
            if (!holdFirstCall) return;
            if (Interlocked.Increment(ref BlockingCalls) == 1)
            {
                if (!_second.Wait(Waits.Deadline)) throw new IOException("no second call began while the first was held (test)");
            }
            else _second.Set();
        }
        public bool NeverWaits => inner.NeverWaits;
        public string Path => inner.Path;
        public bool ReadOnly => inner.ReadOnly;
        public long Length => inner.Length;
        public int Read(Span<byte> buffer, long offset)
        {
            if (holdFirstCall) Hold(); else Interlocked.Increment(ref BlockingCalls);
            return inner.Read(buffer, offset);
        }
        public void Write(ReadOnlySpan<byte> data, long offset)
        {
            if (holdFirstCall) Hold(); else Interlocked.Increment(ref BlockingCalls);
            if (failWriteAt >= offset && failWriteAt < offset + data.Length) throw new IOException("pwrite failed: errno 5 (test)");
            if (slowWrites) Thread.Sleep(1); // a slow device: the write lands a millisecond after it was asked for
            inner.Write(data, offset);
        }
        public bool TryReadNoWait(Span<byte> buffer, long offset, out int read) { Interlocked.Increment(ref NoWaitCalls); return inner.TryReadNoWait(buffer, offset, out read); }
        public bool TryWriteNoWait(ReadOnlySpan<byte> data, long offset) { Interlocked.Increment(ref NoWaitCalls); return inner.TryWriteNoWait(data, offset); }
        public void SetLength(long length) => inner.SetLength(length);
        public void Flush() => inner.Flush();
        public BlkifStatus PunchHole(long offset, long length) => inner.PunchHole(offset, length);
        public void Dispose() => inner.Dispose();
    }
}
