using BlkTap.Emulator;
using BlkTap.Examples;
using FsCheck;
using FsCheck.Fluent;
using NUnit.Framework;
using BlkTap.Testing.Rigs;

namespace BlkTap.Examples.Tests.Cow;

/// <summary>
/// The cow tap through the emulator: random workloads over img and mem equal the model; data written
/// and flushed survives a restart (new rig, new taps, same files); reads mixing overlay and base merge.
/// </summary>
public class CowModelTests
{
    private const int DiskBytes = 2 << 20;

    private sealed record Case(int Seed, bool OverImg, bool SmallCluster, int Frontends, int Ops, int QueueDepth);

    private static Gen<Case> Cases =>
        from seed in Gen.Choose(1, int.MaxValue - 1)
        from img in Gen.Elements(true, false)
        from small in Gen.Elements(true, false)
        from frontends in Gen.Choose(1, 2)
        from ops in Gen.Choose(10, 60)
        from qd in Gen.Choose(1, 8)
        select new Case(seed, img, small, frontends, ops, qd);

    private static string Lower(TempDir dir, bool overImg, int seed)
    {
        if (!overImg) return $"mem:size={DiskBytes}";
        if (!File.Exists(dir.File("base.raw"))) dir.RandomImage("base.raw", DiskBytes, seed);
        return $"img:path={dir.File("base.raw")}";
    }

    private static string CowSpec(TempDir dir, bool small) => $"cow:overlay={dir.File("ov.cow")}{(small ? ",cluster=4K" : "")}";

    [FsCheck.NUnit.Property(MaxTest = 40)]
    public Property Workload_CowOverImgOrMem_EqualsModel() => Prop.ForAll(Cases.ToArbitrary(), c =>
    {
        using var dir = new TempDir();
        var result = RunWorkload(dir, c).GetAwaiter().GetResult();
        if (result != null) TestContext.Out.WriteLine($"{c}: {result}");
        return result == null;
    });

    private static async Task<string?> RunWorkload(TempDir dir, Case c)
    {
        // Two rounds on the same overlay: the second starts over a non-empty overlay (mixed reads).
        for (int round = 0; round < 2; round++)
        {
            await using var rig = await ChainRig.StartAsync([CowSpec(dir, c.SmallCluster), Lower(dir, c.OverImg, c.Seed)], deterministic: true, c.Seed + round, c.Frontends);
            var results = await new VerifiedWorkload(new WorkloadOptions
            {
                OperationsPerFrontend = c.Ops, QueueDepth = c.QueueDepth, MaxSectors = 40, Seed = c.Seed + round, SharedDisk = true,
            }).RunAsync(rig.Rig);
            foreach (var r in results)
                if (r.Errors != 0 || r.Mismatches != 0 || r.Operations != c.Ops)
                    return $"round {round} {r.Name}: {r.Operations} ops, {r.Errors} errors, {r.Mismatches} mismatches: {string.Join("; ", r.Problems)} {string.Join("; ", rig.Diagnostics)}";
        }
        return null;
    }

    private sealed record RestartCase(int Seed, bool SmallCluster, int Writes, int MaxSectors, int QueueDepth);

    [FsCheck.NUnit.Property(MaxTest = 25)]
    public Property Restart_WrittenAndFlushedData_AllThere() => Prop.ForAll(
        (from seed in Gen.Choose(1, int.MaxValue - 1)
         from small in Gen.Elements(true, false)
         from writes in Gen.Choose(1, 80)
         from max in Gen.Choose(1, 200)
         from qd in Gen.Choose(1, 8)
         select new RestartCase(seed, small, writes, max, qd)).ToArbitrary(), c =>
    {
        using var dir = new TempDir();
        var model = dir.RandomImage("base.raw", DiskBytes, c.Seed);
        var baseCopy = (byte[])model.Clone();
        string[] chain = [CowSpec(dir, c.SmallCluster), $"img:path={dir.File("base.raw")}"];
        string? problem = Task.Run(async () =>
        {
            for (int round = 0; round < 3; round++)
            {
                await using var rig = await ChainRig.StartAsync(chain, deterministic: true, c.Seed + round);
                var before = await rig.ReadAllAsync();
                var diff = ModelWrites.FirstDifference(model, before);
                if (diff != null) return $"after restart {round}: {diff}";
                await ModelWrites.RunAsync(rig, model, c.Seed * 3 + round, c.Writes, c.MaxSectors, c.QueueDepth);
                diff = ModelWrites.FirstDifference(model, await rig.ReadAllAsync());
                if (diff != null) return $"round {round} before restart: {diff}";
            }
            return null;
        }).GetAwaiter().GetResult();
        if (problem != null) TestContext.Out.WriteLine($"{c}: {problem}");
        // The base is never written (readonly-base): every change lives in the overlay.
        return problem == null && File.ReadAllBytes(dir.File("base.raw")).AsSpan().SequenceEqual(baseCopy);
    });

    [Test]
    public async Task Read_HalfOverlayHalfBase_MergesSectorExact()
    {
        using var dir = new TempDir();
        var model = dir.RandomImage("base.raw", DiskBytes, 7);
        await using var rig = await ChainRig.StartAsync([CowSpec(dir, false), $"img:path={dir.File("base.raw")}"], deterministic: true, 3);
        // Every other sector of 0..63 in the overlay, then one read across all of them.
        await rig.Execute(async () =>
        {
            for (ulong s = 0; s < 64; s += 2)
            {
                var d = new byte[512];
                new Random((int)s).NextBytes(d);
                d.CopyTo(model, (int)s * 512);
                Assert.That(await rig.Front.WriteAsync(s, d), Is.EqualTo(BlkifStatus.Okay));
            }
            var buf = new byte[64 * 512];
            Assert.That(await rig.Front.ReadAsync(0, buf), Is.EqualTo(BlkifStatus.Okay));
            Assert.That(ModelWrites.FirstDifference(model.AsSpan(0, buf.Length).ToArray(), buf), Is.Null);
        });
        Assert.That(((CowTap)rig.Taps[0]).Overlay!.AllocatedSectors, Is.EqualTo(32UL));
    }

    [Test]
    public async Task Attach_ReadOnlyBase_DiskIsWritableAndBaseUntouched()
    {
        using var dir = new TempDir();
        var image = dir.RandomImage("base.raw", DiskBytes, 9);
        await using (var rig = await ChainRig.StartAsync([CowSpec(dir, true), $"img:path={dir.File("base.raw")},readonly=true"], deterministic: true, 4))
        {
            Assert.That(rig.Front.IsReadOnly, Is.False);
            await rig.Execute(async () => Assert.That(await rig.Front.WriteAsync(5, new byte[4096]), Is.EqualTo(BlkifStatus.Okay)));
        }
        Assert.That(File.ReadAllBytes(dir.File("base.raw")), Is.EqualTo(image));
    }
}
