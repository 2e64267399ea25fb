using BlkTap.Chains;
using BlkTap.Emulator;
using BlkTap.Testing.Rigs;
using FsCheck;
using FsCheck.Fluent;
using NUnit.Framework;

namespace BlkTap.Examples.Tests.Aio;

/// <summary>
/// The aio tap through the emulator. It completes requests from pool threads, which the
/// deterministic scheduler cannot wait for (it goes idle), so these run the rig threaded: the
/// completion order is then genuinely random.
/// </summary>
public class AioModelTests
{
    private const int DiskBytes = 4 << 20;

    private sealed record Case(int Seed, int Depth, int Frontends, int Ops, int QueueDepth, bool UnderCow);

    [FsCheck.NUnit.Property(MaxTest = 20)]
    public Property Workload_ConcurrentCompletions_EqualsModel() => Prop.ForAll(
        (from seed in Gen.Choose(1, int.MaxValue - 1)
         from depth in Gen.Elements(1, 3, 64)
         from frontends in Gen.Choose(1, 3)
         from ops in Gen.Choose(20, 200)
         from qd in Gen.Choose(1, 16)
         from cow in Gen.Elements(false, false, true)
         select new Case(seed, depth, frontends, ops, qd, cow)).ToArbitrary(), c =>
    {
        using var dir = new TempDir();
        dir.RandomImage("disk.raw", DiskBytes, c.Seed);
        var result = Task.Run(async () =>
        {
            var chain = new List<string>();
            if (c.UnderCow) chain.Add($"cow:overlay={dir.File("ov.cow")}");
            chain.Add($"aio:path={dir.File("disk.raw")},depth={c.Depth}");
            await using var rig = await ChainRig.StartAsync(chain, deterministic: false, c.Seed, c.Frontends);
            var results = await new VerifiedWorkload(new WorkloadOptions
            {
                OperationsPerFrontend = c.Ops, QueueDepth = c.QueueDepth, MaxSectors = 64, Seed = c.Seed, SharedDisk = true,
            }).RunAsync(rig.Rig);
            foreach (var r in results)
                if (r.Errors != 0 || r.Mismatches != 0 || r.Operations != c.Ops)
                    return $"{r.Name}: {r.Operations} ops, {r.Errors} errors, {r.Mismatches} mismatches: {string.Join("; ", r.Problems)} {string.Join("; ", rig.Diagnostics)}";
            return null;
        }).GetAwaiter().GetResult();
        if (result != null) TestContext.Out.WriteLine($"{c}: {result}");
        return result == null;
    });

    [Test]
    public async Task Writes_ThenReopen_FileHoldsModel()
    {
        using var dir = new TempDir();
        var model = dir.RandomImage("disk.raw", DiskBytes, 5);
        await using (var rig = await ChainRig.StartAsync([$"aio:path={dir.File("disk.raw")},depth=8"], deterministic: false, 5))
        {
            await ModelWrites.RunAsync(rig, model, 5, 300, 128, 16);
            Assert.That(ModelWrites.FirstDifference(model, await rig.ReadAllAsync()), Is.Null);
        }
        Assert.That(ModelWrites.FirstDifference(model, File.ReadAllBytes(dir.File("disk.raw"))), Is.Null);
    }

    [Test]
    public async Task Requests_DepthEight_ManyInFlightAtOnce()
    {
        using var dir = new TempDir();
        dir.RandomImage("disk.raw", DiskBytes, 6);
        var taps = BlkTap.Examples.ExampleTaps.CreateRegistry().Build([BlkTap.Chains.TapSpec.Parse($"aio:path={dir.File("disk.raw")},depth=8")], new());
        var submitted = new List<ulong>();
        var answered = new List<ulong>();
        int maxInFlight = 0;
        await using var rig = await EmulatorRig.StartAsync(new EmulatorRigOptions { Frontends = 1 }, runtime =>
        {
            runtime.RegisterRequestHook("order", Hook.Request(r => { submitted.Add(r.Id); maxInFlight = Math.Max(maxInFlight, (int)runtime.InFlight); return HookResult.Pass; }));
            runtime.RegisterResponseHook("order", Hook.Response(r => answered.Add(r.Id)));
            TapChain.Register(runtime, taps);
        });
        try
        {
            var front = rig.Frontends[0];
            var reads = Enumerable.Range(0, 16).Select(i => front.ReadAsync((ulong)(i * 128), new byte[64 * 1024])).ToArray();
            Assert.That(await Task.WhenAll(reads), Is.All.EqualTo(BlkifStatus.Okay));
            // A terminator serving on the loop (img) answers each request before the next arrives:
            // in flight is then always 1. Stolen, concurrently served requests pile up.
            Assert.That(maxInFlight, Is.GreaterThan(1));
            Assert.That(answered, Is.EquivalentTo(submitted));
        }
        finally
        {
            taps.Dispose();
        }
    }
}
