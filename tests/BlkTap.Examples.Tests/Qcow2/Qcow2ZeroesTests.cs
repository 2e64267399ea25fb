using System.Text.Json;
using BlkTap.Examples.Qcow2;
using BlkTap.Testing;
using BlkTap.Testing.Rigs;
using NUnit.Framework;

namespace BlkTap.Examples.Tests.Qcow2;

/// <summary>
/// Writes of zeroes (<see cref="Qcow2Image.WriteZeroes"/> and all-zero writes through the tap, which is what NBD
/// WRITE_ZEROES becomes): whole clusters become zero clusters in version 3 (qemu-img map says zero, no data), take no
/// new host cluster and free the one they had unless it was written in place; version 2 falls back to writing zeroes.
/// qemu-img check and compare judge every image.
/// </summary>
public class Qcow2ZeroesTests
{
    private const int Cluster = 65536, Size = 4 << 20;

    /// <summary>qemu-img map's extents: (start, length, zero, data).</summary>
    private static List<(long Start, long Length, bool Zero, bool Data)> Map(string path)
    {
        using var doc = JsonDocument.Parse(Peers.Run(QemuImg.Img, ["map", "--output=json", "-f", "qcow2", path]).EnsureSuccess("qemu-img map").StdOut);
        return doc.RootElement.EnumerateArray().Select(e => (e.GetProperty("start").GetInt64(), e.GetProperty("length").GetInt64(),
            e.GetProperty("zero").GetBoolean(), e.GetProperty("data").GetBoolean())).ToList();
    }

    /// <summary>What qemu-img map says of every byte of [from, from+length): all (zero, data) pairs met.</summary>
    private static HashSet<(bool Zero, bool Data)> MapOf(string path, long from, long length) =>
        Map(path).Where(e => e.Start < from + length && e.Start + e.Length > from).Select(e => (e.Zero, e.Data)).ToHashSet();

    [Test]
    public void WriteZeroes_WholeClustersOverBackingV3_ZeroClustersWithoutNewHostClusters()
    {
        using var dir = new TempDir();
        var model = dir.RandomImage("base.raw", Size, 5);
        string path = dir.File("z.qcow2");
        QemuImg.Create(path, Size, Cluster, "base.raw");
        long grown;
        using (var image = Qcow2Image.Open(path, writable: true))
        {
            var data = new byte[Cluster * 2];
            new Random(6).NextBytes(data);
            image.WriteAt(8 * Cluster, data); // allocate clusters 8 and 9 (and the L2 table)
            data.CopyTo(model, 8 * Cluster);
            image.Flush();
            long before = new FileInfo(path).Length;
            image.WriteZeroes(Cluster, 3 * Cluster);              // unallocated, over backing data: zero clusters
            image.WriteAt(20 * Cluster, new byte[2 * Cluster]);   // all-zero writes take the same path
            image.WriteZeroes(9 * Cluster, Cluster);              // allocated in place: zeroes written there
            image.WriteZeroes(30 * Cluster + 512, 1024);          // partial, over backing data: a cluster is allocated
            image.Flush();
            grown = new FileInfo(path).Length - before;
            foreach (var (at, n) in new[] { (Cluster, 3 * Cluster), (20 * Cluster, 2 * Cluster), (9 * Cluster, Cluster), (30 * Cluster + 512, 1024) })
                model.AsSpan(at, n).Clear();
        }
        Assert.That(grown, Is.EqualTo(Cluster), "only the partial write of zeroes took a new cluster");
        Assert.That(MapOf(path, Cluster, 3 * Cluster), Is.EquivalentTo(new[] { (true, false) }), "zero clusters");
        Assert.That(MapOf(path, 20 * Cluster, 2 * Cluster), Is.EquivalentTo(new[] { (true, false) }), "zero clusters from all-zero writes");
        Assert.That(MapOf(path, 9 * Cluster, Cluster), Has.Member((false, true)).Or.Member((true, true)), "written in place: still allocated");
        File.WriteAllBytes(dir.File("model.raw"), model);
        Assert.That(QemuImg.Check(path), Is.Null);
        Assert.That(QemuImg.Compare(path, dir.File("model.raw")), Is.Null);
    }

    [Test]
    public void WriteZeroes_OverCompressedAndZeroedAllocatedClusters_FreesTheirHostClusters()
    {
        using var dir = new TempDir();
        var model = dir.RandomImage("src.raw", Size, 7);
        model.AsSpan(0, Size / 2).Fill(3); // compresses
        File.WriteAllBytes(dir.File("src.raw"), model);
        string path = dir.File("c.qcow2");
        Peers.Run(QemuImg.Img, ["convert", "-c", "-f", "raw", "-O", "qcow2", dir.File("src.raw"), path]).EnsureSuccess("qemu-img convert -c");
        using (var image = Qcow2Image.Open(path, writable: true))
        {
            image.WriteZeroes(0, 8 * Cluster);            // compressed clusters
            image.WriteZeroes(40 * Cluster, 4 * Cluster); // allocated (random data does not compress): written in place
        }
        model.AsSpan(0, 8 * Cluster).Clear();
        model.AsSpan(40 * Cluster, 4 * Cluster).Clear();
        Assert.That(MapOf(path, 0, 8 * Cluster), Is.EquivalentTo(new[] { (true, false) }));
        File.WriteAllBytes(dir.File("model.raw"), model);
        Assert.That(QemuImg.Check(path), Is.Null, "the compressed clusters' refcounts dropped: no leak");
        Assert.That(QemuImg.Compare(path, dir.File("model.raw")), Is.Null);
    }

    [Test]
    public async Task ZeroWrites_Version2OverBacking_ZeroesWrittenAsData()
    {
        using var dir = new TempDir();
        var model = dir.RandomImage("base.raw", Size, 8);
        string path = dir.File("v2.qcow2");
        QemuImg.Create(path, Size, Cluster, "base.raw", version: 2);
        await using (var rig = await ChainRig.StartAsync([$"qcow2:path={path}"], deterministic: true))
        {
            await rig.Execute(async () =>
            {
                Assert.That(await rig.Front.WriteAsync(256, new byte[Cluster * 2]), Is.EqualTo(BlkifStatus.Okay));
                Assert.That(await rig.Front.FlushAsync(), Is.EqualTo(BlkifStatus.Okay));
            });
            model.AsSpan(256 * 512, 2 * Cluster).Clear();
            Assert.That(ModelWrites.FirstDifference(model, await rig.ReadAllAsync()), Is.Null);
        }
        Assert.That(MapOf(path, 2 * Cluster, 2 * Cluster), Is.EquivalentTo(new[] { (false, true) }), "version 2 has no zero flag: data clusters of zeroes");
        File.WriteAllBytes(dir.File("model.raw"), model);
        Assert.That(QemuImg.Check(path), Is.Null);
        Assert.That(QemuImg.Compare(path, dir.File("model.raw")), Is.Null);
    }
}
