using BlkTap.Examples.Qcow2;
using BlkTap.Testing.Rigs;
using FsCheck;
using FsCheck.Fluent;
using NUnit.Framework;

namespace BlkTap.Examples.Tests.Qcow2;

/// <summary>
/// The qcow2 tap through the emulator, judged by qemu: random writes, writes of zeroes, discards and flushes (over images qemu-img made,
/// several cluster sizes and refcount widths, versions 2 and 3, with and without a raw backing file, across restarts) read back as the model says, and
/// afterwards qemu-img check finds no error or leak and qemu-img compare finds the image identical to the model.
/// </summary>
public class Qcow2ModelTests
{
    private const int DiskBytes = 4 << 20;

    private sealed record Case(int Seed, int ClusterBits, bool Backing, int Ops, int MaxSectors, int Rounds, int RefcountBits, int Version);

    private static Gen<Case> Cases =>
        from seed in Gen.Choose(1, int.MaxValue - 1)
        from bits in Gen.Elements(9, 10, 12, 16, 21)
        from backing in Gen.Elements(true, false)
        from ops in Gen.Choose(5, 60)
        from max in Gen.Elements(1, 8, 64, 300)
        from rounds in Gen.Choose(1, 3)
        from refcountBits in Gen.Elements(1, 4, 16, 16, 64)
        from version in Gen.Elements(3, 3, 3, 2)
        select new Case(seed, bits, backing, ops, max, rounds, version == 2 ? 16 : refcountBits, version); // v2: 16-bit refcounts only

    [FsCheck.NUnit.Property(MaxTest = 30)]
    public Property Workload_QemuMadeImage_QemuAgreesWithModel() => Prop.ForAll(Cases.ToArbitrary(), c =>
    {
        _ = QemuImg.Img;
        using var dir = new TempDir();
        var problem = Run(dir, c).GetAwaiter().GetResult();
        if (problem != null) TestContext.Out.WriteLine($"{c}: {problem}");
        return problem == null;
    });

    private static async Task<string?> Run(TempDir dir, Case c)
    {
        string image = dir.File("disk.qcow2");
        byte[] model;
        if (c.Backing)
        {
            model = dir.RandomImage("base.raw", DiskBytes, c.Seed);
            QemuImg.Create(image, DiskBytes, 1 << c.ClusterBits, "base.raw", c.RefcountBits, c.Version);
        }
        else
        {
            model = new byte[DiskBytes];
            QemuImg.Create(image, DiskBytes, 1 << c.ClusterBits, refcountBits: c.RefcountBits, version: c.Version);
        }
        byte[]? baseBefore = c.Backing ? File.ReadAllBytes(dir.File("base.raw")) : null;
        var rng = new Random(c.Seed);
        for (int round = 0; round < c.Rounds; round++)
        {
            await using var rig = await ChainRig.StartAsync([$"qcow2:path={image}"], deterministic: true, c.Seed + round);
            var diff = ModelWrites.FirstDifference(model, await rig.ReadAllAsync());
            if (diff != null) return $"round {round}, at open: {diff}";
            string? failed = null;
            await rig.Execute(async () => failed = await Workload(rig, model, rng, c));
            if (failed != null) return $"round {round}: {failed}; {string.Join("; ", rig.Diagnostics)}";
            diff = ModelWrites.FirstDifference(model, await rig.ReadAllAsync());
            if (diff != null) return $"round {round}, after the workload: {diff}";
        }
        File.WriteAllBytes(dir.File("model.raw"), model);
        if (baseBefore != null && !File.ReadAllBytes(dir.File("base.raw")).AsSpan().SequenceEqual(baseBefore)) return "the backing file changed";
        return QemuImg.Check(image) ?? QemuImg.Compare(image, dir.File("model.raw"));
    }

    private static async Task<string?> Workload(ChainRig rig, byte[] model, Random rng, Case c)
    {
        ulong sectors = (ulong)model.Length / 512;
        int clusterSectors = (1 << c.ClusterBits) / 512;
        for (int i = 0; i < c.Ops; i++)
        {
            int kind = rng.Next(10);
            if (kind == 0)
            {
                var s = await rig.Front.FlushAsync();
                if (s != BlkifStatus.Okay) return $"flush: {s}";
                continue;
            }
            ulong count = (ulong)rng.Next(1, c.MaxSectors + 1);
            ulong at = (ulong)rng.NextInt64((long)(sectors - count + 1));
            if (kind <= 2)
            {
                // Discards: some cluster-aligned and cluster-sized (whole clusters dropped), some anywhere.
                if (rng.Next(2) == 0 && (ulong)clusterSectors <= sectors)
                {
                    ulong clusters = (ulong)rng.Next(1, 4);
                    count = Math.Min(clusters * (ulong)clusterSectors, sectors);
                    at = (ulong)rng.NextInt64((long)((sectors - count) / (ulong)clusterSectors + 1)) * (ulong)clusterSectors;
                }
                var s = await rig.Front.DiscardAsync(at, count);
                if (s != BlkifStatus.Okay) return $"discard {at}+{count}: {s}";
                Array.Clear(model, (int)at * 512, (int)count * 512);
                continue;
            }
            var data = new byte[(int)count * 512];
            if (kind <= 4)
            {
                // Writes of zeroes (what NBD WRITE_ZEROES becomes): zero clusters where whole clusters are covered.
                if (rng.Next(2) == 0 && (ulong)clusterSectors <= sectors && clusterSectors <= 600)
                {
                    count = Math.Min((ulong)(rng.Next(1, 3) * clusterSectors), sectors);
                    at = (ulong)rng.NextInt64((long)((sectors - count) / (ulong)clusterSectors + 1)) * (ulong)clusterSectors;
                    data = new byte[(int)count * 512];
                }
            }
            else rng.NextBytes(data);
            var w = await rig.Front.WriteAsync(at, data);
            if (w != BlkifStatus.Okay) return $"write {at}+{count}: {w}";
            data.CopyTo(model, (int)at * 512);
        }
        return null;
    }
}
