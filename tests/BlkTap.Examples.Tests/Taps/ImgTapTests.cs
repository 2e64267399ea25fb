using BlkTap.Emulator;
using BlkTap.Testing;
using NUnit.Framework;
using BlkTap.Testing.Rigs;

namespace BlkTap.Examples.Tests.Taps;

public class ImgTapTests
{
    private string _dir = "";

    [SetUp]
    public void SetUp() => _dir = Directory.CreateTempSubdirectory("blktap-img-").FullName;

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, recursive: true);

    private string Image(long bytes)
    {
        var path = Path.Combine(_dir, "disk.raw");
        using var f = File.Create(path);
        f.SetLength(bytes);
        return path;
    }

    [Test]
    public async Task Workload_WithDiscards_EqualsModelAndFileMatches()
    {
        var path = Image(8L << 20);
        var chain = ChainRig.Build(null, $"img:path={path}");
        await using (var rig = await ChainRig.StartAsync(2, [.. chain]))
        {
            Assert.That(rig.Frontends[0].SupportsDiscard, Is.True, "img offers discard (hole punching)");
            var results = await new VerifiedWorkload(new WorkloadOptions { OperationsPerFrontend = 400, DiscardPercent = 15, Seed = 4 }).RunAsync(rig.Rig);
            foreach (var r in results)
            {
                Assert.That(r.Errors + r.Mismatches, Is.Zero, string.Join("; ", r.Problems));
                Assert.That(r.Discards, Is.GreaterThan(0));
            }
        }
        chain.Dispose();
    }

    [Test]
    public async Task Discard_WholeWrittenRange_PunchesHoleAndReadsZero()
    {
        var path = Image(4L << 20);
        var chain = ChainRig.Build(null, $"img:path={path}");
        await using (var rig = await ChainRig.StartAsync(1, [.. chain]))
        {
            var front = rig.Frontends[0];
            var data = Enumerable.Repeat((byte)0x5C, 1 << 20).ToArray();
            for (int i = 0; i < 4; i++) Assert.That(await front.WriteAsync((ulong)(i * 2048), data), Is.EqualTo(BlkifStatus.Okay));
            Assert.That(await front.FlushAsync(), Is.EqualTo(BlkifStatus.Okay));
            long before = AllocatedBytes(path);
            Assert.That(await front.DiscardAsync(0, 8192), Is.EqualTo(BlkifStatus.Okay));
            var back = new byte[1 << 20];
            Assert.That(await front.ReadAsync(2048, back), Is.EqualTo(BlkifStatus.Okay));
            Assert.That(back, Is.All.EqualTo(0));
            long after = AllocatedBytes(path);
            Assert.That(after, Is.LessThan(before), $"allocated bytes {before} -> {after}: the hole was not punched");
        }
        chain.Dispose();
        Assert.That(new FileInfo(path).Length, Is.EqualTo(4L << 20), "KEEP_SIZE: the file keeps its length");
    }

    [Test]
    public async Task ReadOnlyImg_Write_AnsweredError()
    {
        var path = Image(1L << 20);
        var chain = ChainRig.Build(null, $"img:path={path},readonly=true");
        await using (var rig = await ChainRig.StartAsync(1, [.. chain]))
        {
            Assert.That(rig.Frontends[0].IsReadOnly, Is.True);
            Assert.That(await rig.Frontends[0].WriteAsync(0, new byte[512]), Is.EqualTo(BlkifStatus.Error));
            Assert.That(await rig.Frontends[0].ReadAsync(0, new byte[512]), Is.EqualTo(BlkifStatus.Okay));
        }
        chain.Dispose();
    }

    private static long AllocatedBytes(string path)
    {
        var r = Peers.Run(Peers.Require("stat"), ["-c", "%b %B", path]).EnsureSuccess("stat");
        var parts = r.StdOut.Trim().Split(' ');
        return long.Parse(parts[0]) * long.Parse(parts[1]);
    }
}
