using BlkTap.Chains;
using BlkTap.Emulator;
using BlkTap.Testing;
using BlkTap.Testing.Rigs;
using NUnit.Framework;

namespace BlkTap.Examples.Tests.Taps;

/// <summary>
/// <c>img</c> on a file in memory (/dev/shm, tmpfs), with its io_uring path forced on and off: the same verified
/// workloads and flushes must hold either way, and the loop allocates nothing per request.
/// </summary>
[NonParallelizable]
public class ImgTapUringTests
{
    private string _dir = "";

    [SetUp]
    public void SetUp()
    {
        if (!Directory.Exists("/dev/shm")) Assert.Ignore("no /dev/shm");
        _dir = Directory.CreateDirectory(Path.Combine("/dev/shm", "blktap-img-uring-" + Guid.NewGuid().ToString("N"))).FullName;
    }

    [TearDown]
    public void TearDown()
    {
        if (_dir.Length > 0) Directory.Delete(_dir, recursive: true);
    }

    private string Image(long bytes) => ImgTestKit.SparseImage(_dir, bytes);

    /// <summary>True when this kernel lets the process set up an io_uring (kernel.io_uring_disabled may forbid it).</summary>
    private static bool UringAllowed()
    {
        try { return File.ReadAllText("/proc/sys/kernel/io_uring_disabled").Trim() == "0"; }
        catch (IOException) { return true; }
    }

    [TestCase(true)]
    [TestCase(false)]
    public async Task Workload_UringOnOrOff_EqualsModelAndFileMatches(bool uring)
    {
        var path = Image(8L << 20);
        var chain = ChainRig.Build(null, $"img:path={path},uring={(uring ? "true" : "false")}");
        var img = (ImgTap)chain[0];
        await using (var rig = await ChainRig.StartAsync(2, [.. chain]))
        {
            var results = await new VerifiedWorkload(new WorkloadOptions { OperationsPerFrontend = 600, DiscardPercent = 10, FlushPercent = 5, Seed = 11 }).RunAsync(rig.Rig);
            foreach (var r in results) Assert.That(r.Errors + r.Mismatches, Is.Zero, string.Join("; ", r.Problems));
            var onLoop = new TaskCompletionSource<(int, int)>(TaskCreationOptions.RunContinuationsAsynchronously);
            rig.Rig.Runtime.Post(() => onLoop.SetResult((img.QueuedImages, img.BatchedImages)));
            var (queued, batched) = await onLoop.Task.WaitAsync(TimeSpan.FromSeconds(60));
            if (uring && UringAllowed()) Assert.That(queued, Is.EqualTo(1), "the image in /dev/shm goes through io_uring");
            if (!uring) Assert.That(queued, Is.Zero, "uring=false keeps plain pread/pwrite");
            Assert.That(batched, Is.EqualTo(1), "either way the image in /dev/shm gathers each pass's reads and writes");
        }
        chain.Dispose();
    }

    [TestCase(true)]
    [TestCase(false)]
    public async Task OverlappingWritesFlushRead_UringOnOrOff_FileHoldsTheLastWrite(bool uring)
    {
        var path = Image(4L << 20);
        var chain = ChainRig.Build(null, $"img:path={path},uring={(uring ? "true" : "false")}");
        await using (var rig = await ChainRig.StartAsync(1, [.. chain]))
        {
            var front = rig.Frontends[0];
            var a = Enumerable.Repeat((byte)0xA1, 64 << 10).ToArray();
            var b = Enumerable.Repeat((byte)0xB2, 4096).ToArray();
            // Sixteen 64 KiB writes in flight together, then a 4 KiB write over the first after its acknowledgement.
            var writes = Enumerable.Range(0, 16).Select(i => front.WriteAsync((ulong)i * 128, a)).ToList();
            foreach (var w in writes) Assert.That(await w, Is.EqualTo(BlkifStatus.Okay));
            Assert.That(await front.WriteAsync(8, b), Is.EqualTo(BlkifStatus.Okay));
            Assert.That(await front.FlushAsync(), Is.EqualTo(BlkifStatus.Okay));
            var back = new byte[64 << 10];
            Assert.That(await front.ReadAsync(128 * 3, back), Is.EqualTo(BlkifStatus.Okay));
            Assert.That(back, Is.All.EqualTo((byte)0xA1));
            // Past the end of the disk: an error, not an exception.
            Assert.That(await front.ReadAsync((4L << 20) / 512, new byte[512]), Is.EqualTo(BlkifStatus.Error));
        }
        chain.Dispose();
        var file = File.ReadAllBytes(path);
        Assert.That(file.AsSpan(128 * 512 * 5, 64 << 10).ToArray(), Is.All.EqualTo((byte)0xA1));
        Assert.That(file.AsSpan(8 * 512, 4096).ToArray(), Is.All.EqualTo((byte)0xB2), "the later write wins");
        Assert.That(file.AsSpan(0, 8 * 512).ToArray(), Is.All.EqualTo((byte)0xA1));
    }

    [TestCase(true, BlkifOperation.Read)]
    [TestCase(true, BlkifOperation.Write)]
    [TestCase(false, BlkifOperation.Write)]
    public async Task SteadyState_UringOnOrOff_LoopAllocatesNothingPerRequest(bool uring, BlkifOperation op)
    {
        var path = Image(8L << 20);
        var img = new ImgTap(path, readOnly: false, uring: uring);
        await using (var rig = await EmulatorRig.StartAsync(new EmulatorRigOptions { Frontends = 1 }, rt => TapChain.Register(rt, [img])))
        {
            var (bytesPerRequest, _) = await ImgTestKit.LoopBytesPerRequestAsync(rig, op);
            Assert.That(bytesPerRequest, Is.LessThan(0.05), $"{bytesPerRequest:F3} bytes allocated on the loop per request");
        }
        img.Dispose();
    }
}
