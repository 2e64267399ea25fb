using BlkTap.Emulator.PowerCut;
using BlkTap.Examples.Qcow2;
using BlkTap.Testing.Rigs;
using FsCheck;
using FsCheck.Fluent;
using NUnit.Framework;

namespace BlkTap.Examples.Tests.Qcow2;

/// <summary>
/// Power cuts under a qcow2 image (on <see cref="PowerCutStorage"/>) at a random storage operation: after reopening,
/// every sector holds what the last completed flush left or something written since, and qemu-img check finds no
/// error (leaked clusters are allowed: they are what a cut between allocation and use leaves).
/// </summary>
public class Qcow2PowerCutTests
{
    private const string Dir = "/pc";
    private const int DiskBytes = 1 << 20;

    private sealed record Case(int Seed, int ClusterSize, bool Backing, int CutAt, PowerCutVariant Variant);

    [FsCheck.NUnit.Property(MaxTest = 60)]
    public Property Cut_RandomOperation_FlushedDataKeptAndNoCorruption() => Prop.ForAll(
        (from seed in Gen.Choose(1, int.MaxValue - 1)
         from cs in Gen.Elements(512, 4096, 65536)
         from backing in Gen.Elements(true, false)
         from cut in Gen.Choose(1, 400)
         from variant in Gen.Elements(PowerCutVariant.SyncedOnly, PowerCutVariant.RandomSubset, PowerCutVariant.TornWrite)
         select new Case(seed, cs, backing, cut, variant)).ToArbitrary(), c =>
    {
        _ = QemuImg.Img;
        var problem = Run(c);
        if (problem != null) TestContext.Out.WriteLine($"{c}: {problem}");
        return problem == null;
    });

    [Test]
    public void Cut_TornWriteWhileFlushing_Seed1453482405_Holds() =>
        Assert.That(Run(new Case(1453482405, 4096, false, 60, PowerCutVariant.TornWrite)), Is.Null);

    private static string? Run(Case c)
    {
        var rng = new Random(c.Seed);
        var storage = new PowerCutStorage(Dir);
        var model = new byte[DiskBytes];
        if (c.Backing)
        {
            rng.NextBytes(model);
            storage.AddDurableFile($"{Dir}/base.raw", model);
        }
        Qcow2Creator.Create($"{Dir}/d.qcow2", DiskBytes, c.ClusterSize, c.Backing ? "base.raw" : null, c.Backing ? "raw" : null, storage);
        int sectors = DiskBytes / 512;
        // Per sector, the contents it may hold after a cut: what the last flush left and whatever was written since.
        var candidates = new List<byte[]>[sectors];
        void Settle() { for (int s = 0; s < sectors; s++) candidates[s] = [model.AsSpan(s * 512, 512).ToArray()]; }
        Settle();
        storage.ArmCut(storage.Operations + c.CutAt, c.Variant, new Random(c.Seed ^ 0x5555));
        try
        {
            using var image = Qcow2Image.Open($"{Dir}/d.qcow2", writable: true, storage);
            for (int i = 0; i < 200 && !storage.IsCut; i++)
            {
                int kind = rng.Next(10);
                if (kind == 0) { image.Flush(); Settle(); continue; }
                int count = rng.Next(1, 40), at = rng.Next(sectors - count + 1);
                var data = new byte[count * 512];
                if (kind > 2) rng.NextBytes(data);
                // Candidates first: a write the cut interrupts may have reached some sectors.
                data.CopyTo(model, at * 512);
                for (int s = at; s < at + count; s++) candidates[s].Add(model.AsSpan(s * 512, 512).ToArray());
                if (kind == 1) image.Discard((long)at * 512, (long)count * 512);
                else if (kind == 2) image.WriteZeroes((long)at * 512, (long)count * 512);
                else image.WriteAt((long)at * 512, data);
            }
        }
        catch (IOException) when (storage.IsCut) { }
        var after = storage.Cut(c.Variant, new Random(c.Seed ^ 0x5555));
        using var tmp = new TempDir();
        File.WriteAllBytes(tmp.File("d.qcow2"), after.ReadAll($"{Dir}/d.qcow2") ?? []);
        if (c.Backing) File.WriteAllBytes(tmp.File("base.raw"), after.ReadAll($"{Dir}/base.raw")!);
        var check = BlkTap.Testing.Peers.Run(QemuImg.Img, ["check", "-f", "qcow2", tmp.File("d.qcow2")]);
        if (check.ExitCode is not (0 or 3)) return $"qemu-img check exited {check.ExitCode}: {check.StdOut} {check.StdErr}";
        using var reopened = Qcow2Image.Open($"{Dir}/d.qcow2", writable: false, after);
        var sector = new byte[512];
        for (int s = 0; s < sectors; s++)
        {
            reopened.ReadAt((long)s * 512, sector);
            if (!candidates[s].Any(k => k.AsSpan().SequenceEqual(sector))) return $"sector {s} holds neither what the last flush left nor anything written since ({candidates[s].Count} candidates; zeroes: {sector.AsSpan().IndexOfAnyExcept((byte)0) < 0}; equals a candidate of another sector: {Enumerable.Range(0, sectors).FirstOrDefault(o => candidates[o].Any(k => k.AsSpan().SequenceEqual(sector)), -1)}; cut: {storage.IsCut})";
        }
        return null;
    }
}
