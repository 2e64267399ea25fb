using BlkTap.Chains;
using BlkTap.Emulator;
using BlkTap.Testing.Rigs;
using FsCheck;
using FsCheck.Fluent;
using NUnit.Framework;

namespace BlkTap.Examples.Tests.Lanes;

/// <summary>
/// The img and cow taps with their storage lanes forced: every file says "would block" always (the worker does all the
/// I/O) or at random (requests move between the loop and the worker mid-stream), against the byte-array model, and
/// the FLUSH rule: a flush is answered only after every write acknowledged before it reached the file and was synced.
/// </summary>
public class WorkerPathTests
{
    private const int DiskBytes = 2 << 20;

    private sealed record Case(int Seed, double WouldBlock, bool Cow, int Frontends, int Ops, int QueueDepth);

    private static Gen<Case> Cases =>
        from seed in Gen.Choose(1, int.MaxValue - 1)
        from wouldBlock in Gen.Elements(1.0, 0.5, 0.1)
        from cow in Gen.Elements(true, false)
        from frontends in Gen.Choose(1, 2)
        from ops in Gen.Choose(20, 80)
        from qd in Gen.Choose(1, 16)
        select new Case(seed, wouldBlock, cow, frontends, ops, qd);

    private static WrappingStorage Flaky(double wouldBlock, int seed, List<FlakyNoWaitFile> files) => new((path, f) =>
    {
        var w = new FlakyNoWaitFile(f, wouldBlock, seed ^ path.Length);
        lock (files) files.Add(w);
        return w;
    });

    [FsCheck.NUnit.Property(MaxTest = 30)]
    public Property Workload_ImgOrCowWithWorkerForcedOrFlaky_EqualsModel() => Prop.ForAll(Cases.ToArbitrary(), c =>
    {
        using var dir = new TempDir();
        var result = RunWorkload(dir, c).GetAwaiter().GetResult();
        if (result != null) TestContext.Out.WriteLine($"{c}: {result}");
        return result == null;
    });

    private static async Task<string?> RunWorkload(TempDir dir, Case c)
    {
        dir.RandomImage("base.raw", DiskBytes, c.Seed);
        var files = new List<FlakyNoWaitFile>();
        var context = new TapContext { Output = TextWriter.Null, Storage = Flaky(c.WouldBlock, c.Seed, files) };
        // Two rounds: the second starts over what the first left (for cow: a non-empty overlay, mixed reads).
        for (int round = 0; round < 2; round++)
        {
            string[] specs = c.Cow ? [$"cow:overlay={dir.File("ov.cow")}", $"img:path={dir.File("base.raw")}"] : [$"img:path={dir.File("base.raw")}"];
            using var chain = ChainRig.Build(context, specs);
            await using var rig = await ChainRig.StartAsync(c.Frontends, [.. chain]);
            var results = await new VerifiedWorkload(new WorkloadOptions
            {
                OperationsPerFrontend = c.Ops, QueueDepth = c.QueueDepth, MaxSectors = 40, Seed = c.Seed + round, SharedDisk = true,
                DiscardPercent = c.Cow ? 0 : 10,
            }).RunAsync(rig.Rig);
            foreach (var r in results)
                if (r.Errors != 0 || r.Mismatches != 0 || r.Operations != c.Ops)
                    return $"round {round} {r.Name}: {r.Operations} ops, {r.Errors} errors, {r.Mismatches} mismatches: {string.Join("; ", r.Problems)} {string.Join("; ", rig.Diagnostics)}";
        }
        if (c.WouldBlock >= 1.0 && files.Any(f => f.LoopReads + f.LoopWrites > 0)) return "a file that always blocks was read or written on the loop";
        if (files.Sum(f => f.WorkerReads + f.WorkerWrites) == 0) return "the worker never ran";
        return null;
    }

    [TestCase(1.0)]
    [TestCase(0.5)]
    [TestCase(0.0)]
    public async Task Flush_WritesAcknowledgedBefore_SyncedBeforeTheFlushIsAnswered(double wouldBlock)
    {
        using var dir = new TempDir();
        var path = dir.File("disk.raw");
        using (var f = File.Create(path)) f.SetLength(DiskBytes);
        var files = new List<FlakyNoWaitFile>();
        using var chain = ChainRig.Build(new TapContext { Output = TextWriter.Null, Storage = Flaky(wouldBlock, 7, files) }, $"img:path={path}");
        await using var rig = await ChainRig.StartAsync(1, [.. chain]);
        var front = rig.Front;
        var file = files.Single();
        var random = new Random(3);
        var acked = new List<long>();
        var pending = new List<(long Offset, Task<BlkifStatus> Task)>();
        int flushes = 0;
        for (int i = 0; i < 400; i++)
        {
            foreach (var p in pending.Where(p => p.Task.IsCompleted).ToList())
            {
                Assert.That(await p.Task, Is.EqualTo(BlkifStatus.Okay));
                acked.Add(p.Offset);
                pending.Remove(p);
            }
            if (i % 25 == 24)
            {
                // Everything acknowledged so far must be in the file and synced when this flush is answered; writes
                // still in flight ride along (no promise either way).
                var before = acked.ToHashSet();
                var flush = front.FlushAsync();
                for (int k = 0; k < 4; k++) { long o = random.Next(DiskBytes / 4096) * 4096L; pending.Add((o, front.WriteAsync((ulong)o / 512, new byte[4096]))); }
                Assert.That(await flush, Is.EqualTo(BlkifStatus.Okay));
                flushes++;
                var log = file.Snapshot();
                int lastSyncStart = log.FindLastIndex(e => e.Op == "flush-start");
                Assert.That(lastSyncStart, Is.GreaterThanOrEqualTo(0), "the flush reached the file");
                Assert.That(log.FindIndex(lastSyncStart, e => e.Op == "flush-end"), Is.GreaterThan(lastSyncStart), "the sync had returned when the flush was answered");
                var synced = log.Take(lastSyncStart).Where(e => e.Op == "write").Select(e => e.Offset).ToHashSet();
                Assert.That(before.Where(o => !synced.Contains(o)), Is.Empty, $"flush {flushes}: writes acknowledged before it but not written before its sync");
                continue;
            }
            long offset = random.Next(DiskBytes / 4096) * 4096L;
            if (pending.Any(p => p.Offset == offset)) continue;
            var data = new byte[4096];
            random.NextBytes(data);
            pending.Add((offset, front.WriteAsync((ulong)offset / 512, data)));
            if (pending.Count >= 8) await Task.WhenAny(pending.Select(p => p.Task));
        }
        foreach (var p in pending) Assert.That(await p.Task, Is.EqualTo(BlkifStatus.Okay));
        Assert.That(flushes, Is.EqualTo(16));
        if (wouldBlock >= 1.0) Assert.That(file.LoopWrites, Is.Zero, "every write went to the worker");
        if (wouldBlock == 0.0) Assert.That(file.LoopWrites, Is.GreaterThan(0), "writes that cannot block stay on the loop");
    }
}
