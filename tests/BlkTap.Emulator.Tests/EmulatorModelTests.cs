using BlkTap.Emulator;
using FsCheck;
using FsCheck.Fluent;
using NUnit.Framework;

namespace BlkTap.Emulator.Tests;

/// <summary>
/// The model-based properties: random workloads from several frontends, through blkfront, the ring,
/// the tap runtime and a terminator (or a real blkback behind an interposing tap), must behave exactly
/// like a byte-array model disk. Runs in the emulator's deterministic mode, so a failing case
/// reproduces from its seed.
/// </summary>
public class EmulatorModelTests
{
    private sealed record Case(int Seed, int Frontends, BlkifProtocol Protocol, bool PassThrough, int Ops, int QueueDepth, bool Interposed);

    private static Gen<Case> Cases(bool interposed) =>
        from seed in Gen.Choose(1, int.MaxValue - 1)
        from frontends in Gen.Choose(1, 3)
        from protocol in Gen.Elements(BlkifProtocol.X86_64, BlkifProtocol.X86_32)
        from pass in Gen.Elements(true, false)
        from ops in Gen.Choose(5, 40)
        from qd in Gen.Choose(1, 8)
        select new Case(seed, frontends, protocol, pass, ops, qd, interposed);

    private static bool Check(Case c)
    {
        var result = RunCase(c).GetAwaiter().GetResult();
        if (result != null) TestContext.Out.WriteLine($"{c}: {result}");
        return result == null;
    }

    private static async Task<string?> RunCase(Case c)
    {
        var diagnostics = new List<string>();
        var device = new MemoryBlockDevice(4L << 20);
        await using var rig = await EmulatorRig.StartAsync(new EmulatorRigOptions
        {
            Frontends = c.Frontends,
            Deterministic = true,
            Seed = c.Seed,
            Protocol = c.Protocol,
            BlkbackDevice = c.Interposed ? device : null,
            Diagnostics = d => diagnostics.Add(d.ToString()),
        }, runtime =>
        {
            if (c.PassThrough || c.Interposed) runtime.RegisterRequestHook("pass", Hook.Request(_ => HookResult.Pass));
            if (!c.Interposed)
            {
                var serve = new BlockDeviceHook(device);
                runtime.RegisterRequestHook("mem", serve);
                runtime.RegisterControlHook("mem", serve);
            }
        });
        var results = await new VerifiedWorkload(new WorkloadOptions
        {
            OperationsPerFrontend = c.Ops, QueueDepth = c.QueueDepth, MaxSectors = 40, Seed = c.Seed, SharedDisk = true,
        }).RunAsync(rig);
        foreach (var r in results)
        {
            if (r.Errors != 0 || r.Mismatches != 0 || r.Operations != c.Ops)
                return $"{r.Name}: {r.Operations} ops, {r.Errors} errors, {r.Mismatches} mismatches: {string.Join("; ", r.Problems)} {string.Join("; ", diagnostics)}";
        }
        return null;
    }

    [FsCheck.NUnit.Property(MaxTest = 200)]
    public Property Workload_ThroughTapToTerminator_EqualsModel() =>
        Prop.ForAll(Cases(interposed: false).ToArbitrary(), Check);

    [FsCheck.NUnit.Property(MaxTest = 60)]
    public Property Workload_ThroughInterposingTapToRealBlkback_EqualsModel() =>
        Prop.ForAll(Cases(interposed: true).ToArbitrary(), Check);

    [Test]
    public async Task Workload_ThreadedEmulatorTwoFrontends_EqualsModel()
    {
        var result = await RunThreaded();
        Assert.That(result, Is.Null);
    }

    private static async Task<string?> RunThreaded()
    {
        var device = new MemoryBlockDevice(16L << 20);
        await using var rig = await EmulatorRig.StartAsync(new EmulatorRigOptions { Frontends = 2 }, runtime =>
        {
            var serve = new BlockDeviceHook(device);
            runtime.RegisterRequestHook("mem", serve);
            runtime.RegisterControlHook("mem", serve);
        });
        var results = await new VerifiedWorkload(new WorkloadOptions { OperationsPerFrontend = 1000, QueueDepth = 16 }).RunAsync(rig);
        var bad = results.FirstOrDefault(r => r.Errors != 0 || r.Mismatches != 0);
        return bad == null ? null : string.Join("; ", bad.Problems);
    }

    [Test]
    public async Task Deterministic_SameSeed_SameRequestOrder()
    {
        async Task<string> Trace(int seed)
        {
            var order = new List<string>();
            var device = new MemoryBlockDevice(1L << 20);
            await using var rig = await EmulatorRig.StartAsync(new EmulatorRigOptions { Frontends = 2, Deterministic = true, Seed = seed }, runtime =>
            {
                runtime.RegisterRequestHook("trace", Hook.Request(r => { order.Add($"{r.Session.Name}:{r.Operation}:{r.Sector}"); return HookResult.Pass; }));
                var serve = new BlockDeviceHook(device);
                runtime.RegisterRequestHook("mem", serve);
                runtime.RegisterControlHook("mem", serve);
            });
            await new VerifiedWorkload(new WorkloadOptions { OperationsPerFrontend = 30, QueueDepth = 4, Seed = 5 }).RunAsync(rig);
            return string.Join(",", order);
        }
        var a = await Trace(11);
        var b = await Trace(11);
        var c = await Trace(12);
        Assert.That(a, Is.EqualTo(b));
        Assert.That(a, Is.Not.EqualTo(c));
    }
}
