using BlkTap.Chains;
using BlkTap.Emulator;
using BlkTap.Testing;
using BlkTap.Testing.Rigs;
using NUnit.Framework;

namespace BlkTap.Examples.Tests.Taps;

/// <summary>
/// <c>img</c> with option <c>map</c> on a file in memory (/dev/shm): pages that hold data are read and written by
/// copying through a shared mapping, holes with system calls. Requests of one pass must still see each other in ring
/// order, discards must read back as zeroes, and the file must hold what a model holds.
/// </summary>
[NonParallelizable]
public class ImgTapMapTests
{
    private string _dir = "";

    [SetUp]
    public void SetUp()
    {
        if (!Directory.Exists("/dev/shm")) Assert.Ignore("no /dev/shm");
        _dir = Directory.CreateDirectory(Path.Combine("/dev/shm", "blktap-img-map-" + Guid.NewGuid().ToString("N"))).FullName;
    }

    [TearDown]
    public void TearDown()
    {
        if (_dir.Length > 0) Directory.Delete(_dir, recursive: true);
    }

    private string Image(long bytes) => ImgTestKit.SparseImage(_dir, bytes);

    [TestCase(1)]
    [TestCase(3)]
    public async Task SubmitBatch_MappedImageWithHolesAndDiscards_EachReadSeesTheRequestsBeforeIt(int threads)
    {
        // 64 sectors (8 pages) of a sparse image: pages go from hole to data (pwrite, then the mapping) and back to hole
        // (discard) inside the batches, so one pass mixes copies through the mapping with system calls.
        const int sectors = 64;
        var path = Image(1L << 20);
        var img = new ImgTap(path, readOnly: false, threads: threads, map: true);
        var model = new byte[sectors * 512];
        await using (var rig = await EmulatorRig.StartAsync(new EmulatorRigOptions { Frontends = 1 }, rt => TapChain.Register(rt, [img])))
        {
            var front = rig.Frontends[0];
            for (int seed = 0; seed < 40; seed++)
            {
                var random = new Random(seed);
                var requests = new BlkFrontBatchRequest[24];
                var expected = new byte[24][];
                for (int i = 0; i < requests.Length; i++)
                {
                    int first = random.Next(sectors);
                    int count = 1 + random.Next(Math.Min(16, sectors - first));
                    int kind = random.Next(10);
                    var buffer = new byte[count * 512];
                    if (kind < 5)
                    {
                        random.NextBytes(buffer);
                        buffer.CopyTo(model.AsSpan(first * 512));
                        requests[i] = new BlkFrontBatchRequest(BlkFrontBatchOperation.Write, (ulong)first, buffer, 0, i);
                    }
                    else if (kind < 9)
                    {
                        expected[i] = model.AsSpan(first * 512, count * 512).ToArray();
                        requests[i] = new BlkFrontBatchRequest(BlkFrontBatchOperation.Read, (ulong)first, buffer, 0, i);
                    }
                    else
                    {
                        model.AsSpan(first * 512, count * 512).Clear();
                        requests[i] = new BlkFrontBatchRequest(BlkFrontBatchOperation.Discard, (ulong)first, Memory<byte>.Empty, (ulong)count, i);
                    }
                }
                var collector = new ImgTestKit.BatchCollector();
                Waits.OnScheduler(rig.Emulator, () => front.SubmitBatch(requests, collector));
                Waits.ForSignal(collector.Signal, () => collector.Count == requests.Length, "every request of the batch completing");
                Assert.That(collector.Statuses(), Is.All.EqualTo(BlkifStatus.Okay), $"seed {seed}");
                for (int i = 0; i < requests.Length; i++)
                    if (expected[i] != null)
                        Assert.That(requests[i].Buffer.ToArray(), Is.EqualTo(expected[i]), $"seed {seed}: read {i} sees every write and discard before it and none after");
            }
            var (mapped, copies) = Waits.OnLoop(rig.Runtime, () => (img.MappedImages, img.MappedOperations));
            Assert.That(mapped, Is.EqualTo(1), "the image in /dev/shm is mapped");
            Assert.That(copies, Is.GreaterThan(0), "pages that held data were copied through the mapping");
        }
        img.Dispose();
        Assert.That(File.ReadAllBytes(path).AsSpan(0, model.Length).ToArray(), Is.EqualTo(model), "the file holds the last write or discard of every sector");
    }

    [TestCase(1)]
    [TestCase(2)]
    public async Task Workload_MappedImage_EqualsModel(int threads)
    {
        var path = Image(8L << 20);
        var chain = ChainRig.Build(null, $"img:path={path},map=true,threads={threads}");
        var img = (ImgTap)chain[0];
        await using (var rig = await ChainRig.StartAsync(3, [.. chain]))
        {
            var results = await new VerifiedWorkload(new WorkloadOptions { OperationsPerFrontend = 500, DiscardPercent = 10, FlushPercent = 5, Seed = 17 }).RunAsync(rig.Rig);
            foreach (var r in results) Assert.That(r.Errors + r.Mismatches, Is.Zero, string.Join("; ", r.Problems));
            var (mapped, copies) = Waits.OnLoop(rig.Rig.Runtime, () => (img.MappedImages, img.MappedOperations));
            Assert.That(mapped, Is.EqualTo(1));
            Assert.That(copies, Is.GreaterThan(0));
        }
        chain.Dispose();
    }

    [Test]
    public async Task Workload_MapFalse_NothingMapped()
    {
        var path = Image(4L << 20);
        var img = new ImgTap(path, readOnly: false);
        await using (var rig = await EmulatorRig.StartAsync(new EmulatorRigOptions { Frontends = 1 }, rt => TapChain.Register(rt, [img])))
        {
            var results = await new VerifiedWorkload(new WorkloadOptions { OperationsPerFrontend = 200, Seed = 4 }).RunAsync(rig);
            foreach (var r in results) Assert.That(r.Errors + r.Mismatches, Is.Zero, string.Join("; ", r.Problems));
            Assert.That(Waits.OnLoop(rig.Runtime, () => (img.MappedImages, img.MappedOperations)), Is.EqualTo((0, 0L)), "map is off by default");
        }
        img.Dispose();
    }

    [TestCase(BlkifOperation.Read)]
    [TestCase(BlkifOperation.Write)]
    public async Task SteadyState_Mapped_LoopAllocatesNothingPerRequest(BlkifOperation op)
    {
        var path = Image(8L << 20);
        var img = new ImgTap(path, readOnly: false, map: true);
        await using (var rig = await EmulatorRig.StartAsync(new EmulatorRigOptions { Frontends = 1 }, rt => TapChain.Register(rt, [img])))
        {
            var front = rig.Frontends[0];
            var page = new byte[4096];
            for (ulong s = 0; s < front.Sectors; s += 8) Assert.That(await front.WriteAsync(s, page), Is.EqualTo(BlkifStatus.Okay)); // every page holds data
            var (bytesPerRequest, requests) = await ImgTestKit.LoopBytesPerRequestAsync(rig, op);
            Assert.That(bytesPerRequest, Is.LessThan(0.05), $"{bytesPerRequest:F3} bytes allocated on the loop per request");
            Assert.That(Waits.OnLoop(rig.Runtime, () => img.MappedOperations), Is.GreaterThanOrEqualTo(requests), "the timed requests were copies");
        }
        img.Dispose();
    }
}
