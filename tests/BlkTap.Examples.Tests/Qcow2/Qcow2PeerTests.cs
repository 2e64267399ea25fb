using BlkTap.Examples.Qcow2;
using BlkTap.Testing;
using BlkTap.Testing.Rigs;
using NUnit.Framework;

namespace BlkTap.Examples.Tests.Qcow2;

/// <summary>
/// The qcow2 tap against images qemu wrote (qemu-io, qemu-img convert -c, backing chains, version 2) and images
/// written until the refcount table has to move: what qemu wrote reads back, what we write qemu-img check and
/// compare accept.
/// </summary>
public class Qcow2PeerTests
{
    [TestCase(512)]
    [TestCase(65536)]
    [TestCase(2 << 20)]
    public async Task Read_QemuIoWrites_ReadsWhatQemuWrote(int clusterSize)
    {
        var io = QemuImg.Io;
        using var dir = new TempDir();
        string path = dir.File("q.qcow2");
        const int size = 4 << 20;
        QemuImg.Create(path, size, clusterSize);
        Peers.Run(io, ["-c", "write -P 0xab 0 64k", "-c", "write -P 0x5c 100k 7k", "-c", "write -P 0x33 1M 1M", "-c", "write -z 1536k 64k", path]).EnsureSuccess("qemu-io");
        var expected = new byte[size];
        expected.AsSpan(0, 65536).Fill(0xab);
        expected.AsSpan(100 * 1024, 7 * 1024).Fill(0x5c);
        expected.AsSpan(1 << 20, 1 << 20).Fill(0x33);
        expected.AsSpan(1536 * 1024, 65536).Clear();
        await using var rig = await ChainRig.StartAsync([$"qcow2:path={path}"], deterministic: true);
        Assert.That(ModelWrites.FirstDifference(expected, await rig.ReadAllAsync()), Is.Null);
    }

    [TestCase(4096, "zlib")]
    [TestCase(65536, "zlib")]
    [TestCase(4096, "zstd")]
    [TestCase(65536, "zstd")]
    public async Task ReadWrite_CompressedImage_ReadsSourceAndOverwritesCleanly(int clusterSize, string compression)
    {
        var img = QemuImg.Img;
        using var dir = new TempDir();
        var model = dir.RandomImage("src.raw", 2 << 20, clusterSize);
        model.AsSpan(300_000, 200_000).Fill(7); // compresses well
        File.WriteAllBytes(dir.File("src.raw"), model);
        string path = dir.File("c.qcow2");
        Peers.Run(img, ["convert", "-c", "-f", "raw", "-O", "qcow2", "-o", $"cluster_size={clusterSize},compression_type={compression}", dir.File("src.raw"), path]).EnsureSuccess("qemu-img convert -c");
        Assert.That(Peers.Run(img, ["info", path]).StdOut, Does.Contain($"compression type: {compression}"));
        Assert.That(Peers.Run(img, ["check", path]).StdOut, Does.Match(@"[1-9][0-9.]*% compressed clusters"), "some clusters are compressed");
        await using (var rig = await ChainRig.StartAsync([$"qcow2:path={path}"], deterministic: true))
        {
            Assert.That(ModelWrites.FirstDifference(model, await rig.ReadAllAsync()), Is.Null, "compressed clusters read back");
            await ModelWrites.RunAsync(rig, model, 5, 80, 64, 4); // partial overwrites of compressed clusters
            Assert.That(ModelWrites.FirstDifference(model, await rig.ReadAllAsync()), Is.Null);
        }
        File.WriteAllBytes(dir.File("model.raw"), model);
        Assert.That(QemuImg.Check(path), Is.Null);
        Assert.That(QemuImg.Compare(path, dir.File("model.raw")), Is.Null);
    }

    [Test]
    public async Task ReadWrite_Qcow2OverQcow2OverRaw_ChainReadThroughAndLowerUntouched()
    {
        var io = QemuImg.Io;
        var img = QemuImg.Img;
        using var dir = new TempDir();
        var model = dir.RandomImage("base.raw", 3 << 20, 11);
        string mid = dir.File("mid.qcow2"), top = dir.File("top.qcow2");
        QemuImg.Create(mid, 3 << 20, 4096, "base.raw");
        Peers.Run(io, ["-c", "write -P 0x42 512k 300k", mid]).EnsureSuccess("qemu-io mid");
        model.AsSpan(512 * 1024, 300 * 1024).Fill(0x42);
        Peers.Run(img, ["create", "-q", "-f", "qcow2", "-o", "cluster_size=65536", "-b", "mid.qcow2", "-F", "qcow2", top]).EnsureSuccess("create top");
        var midBefore = File.ReadAllBytes(mid);
        await using (var rig = await ChainRig.StartAsync([$"qcow2:path={top}"], deterministic: true, 3))
        {
            Assert.That(ModelWrites.FirstDifference(model, await rig.ReadAllAsync()), Is.Null, "chain read through");
            await ModelWrites.RunAsync(rig, model, 9, 60, 200, 4);
            Assert.That(ModelWrites.FirstDifference(model, await rig.ReadAllAsync()), Is.Null);
        }
        Assert.That(File.ReadAllBytes(mid), Is.EqualTo(midBefore), "the backing image is opened read-only");
        File.WriteAllBytes(dir.File("model.raw"), model);
        Assert.That(QemuImg.Check(top), Is.Null);
        Assert.That(QemuImg.Compare(top, dir.File("model.raw")), Is.Null);
    }

    [Test]
    public async Task Write_WholeDiskWith512ByteClusters_RefcountTableMovesAndQemuAgrees()
    {
        _ = QemuImg.Img;
        using var dir = new TempDir();
        string path = dir.File("small.qcow2");
        const int size = 12 << 20; // 24576 clusters: far more than one refcount table cluster (64 blocks of 256) covers
        Qcow2Creator.Create(path, size, 512);
        long tableBefore = RefcountTableOffset(path);
        var model = new byte[size];
        new Random(4).NextBytes(model);
        await using (var rig = await ChainRig.StartAsync([$"qcow2:path={path}"], deterministic: true))
        {
            await rig.Execute(async () =>
            {
                for (int at = 0; at < size; at += 64 * 1024)
                    Assert.That(await rig.Front.WriteAsync((ulong)at / 512, model.AsMemory(at, 64 * 1024)), Is.EqualTo(BlkifStatus.Okay));
                Assert.That(await rig.Front.FlushAsync(), Is.EqualTo(BlkifStatus.Okay));
            });
        }
        Assert.That(RefcountTableOffset(path), Is.Not.EqualTo(tableBefore), "the table had to grow");
        File.WriteAllBytes(dir.File("model.raw"), model);
        Assert.That(QemuImg.Check(path), Is.Null);
        Assert.That(QemuImg.Compare(path, dir.File("model.raw")), Is.Null);
    }

    [Test]
    public async Task ReadWrite_Version2Image_QemuAgrees()
    {
        var img = QemuImg.Img;
        using var dir = new TempDir();
        var model = dir.RandomImage("base.raw", 2 << 20, 21);
        string path = dir.File("v2.qcow2");
        Peers.Run(img, ["create", "-q", "-f", "qcow2", "-o", "compat=0.10,cluster_size=4096", "-b", "base.raw", "-F", "raw", path]).EnsureSuccess("create v2");
        await using (var rig = await ChainRig.StartAsync([$"qcow2:path={path}"], deterministic: true))
        {
            Assert.That(((Qcow2Tap)rig.Taps[0]).Device.Image.Version, Is.EqualTo(2));
            await ModelWrites.RunAsync(rig, model, 2, 50, 64, 2);
            await rig.Execute(async () =>
            {
                Assert.That(await rig.Front.DiscardAsync(0, 64), Is.EqualTo(BlkifStatus.Okay)); // whole clusters over a backing file in v2: zeroes written
                Assert.That(await rig.Front.FlushAsync(), Is.EqualTo(BlkifStatus.Okay));
            });
            model.AsSpan(0, 64 * 512).Clear();
            Assert.That(ModelWrites.FirstDifference(model, await rig.ReadAllAsync()), Is.Null);
        }
        File.WriteAllBytes(dir.File("model.raw"), model);
        Assert.That(QemuImg.Check(path), Is.Null);
        Assert.That(QemuImg.Compare(path, dir.File("model.raw")), Is.Null);
    }

    private static long RefcountTableOffset(string path)
    {
        var h = new byte[56];
        using (var f = File.OpenRead(path)) f.ReadExactly(h);
        return (long)System.Buffers.Binary.BinaryPrimitives.ReadUInt64BigEndian(h.AsSpan(48));
    }
}
