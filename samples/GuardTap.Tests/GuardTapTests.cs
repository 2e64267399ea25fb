using BlkTap;
using BlkTap.Chains;
using BlkTap.Emulator;
using BlkTap.Examples;
using BlkTap.Testing.Generators;
using BlkTap.Testing.Rigs;
using FsCheck;
using FsCheck.Fluent;
using NUnit.Framework;

namespace GuardTap.Tests;

/// <summary>The guard tap, fuzzed with the kit: its own invariant, and the data of every chain behind it intact.</summary>
[TestFixture] // also what makes the assembly reference NUnit, which the test adapter looks for
public sealed class GuardTapTests
{
    private static TapRegistry Registry()
    {
        var registry = ExampleTaps.CreateRegistry(); // the built-in taps (mem, img, cow, ...)
        registry.Add(new GuardTapFactory(), "sample");
        return registry;
    }

    // guard in front of mem: every read matches the model (refused writes never reach the disk: the model skips
    // them, so one that got through shows as a mismatch), and every refusal is a guarded write the guest saw fail.
    [FsCheck.NUnit.Property(MaxTest = 8)]
    public Property Guard_InFrontOfMem_ReadsMatchModelAndOnlyGuardedWritesFail() =>
        Prop.ForAll(Arb.From(
            from guarded in Gen.Choose(0, 64)
            from seed in Gen.Choose(1, 10_000)
            select (guarded, seed)), c =>
        {
            using var chain = ChainRig.Build(Registry(), null, $"guard:sectors={c.guarded}", "mem:size=1M");
            var guard = (GuardTap)chain[0];
            var results = Run(chain, c.seed);
            return (results.All(r => r.Mismatches == 0) && results.Sum(r => r.Errors) == guard.Refused
                    && (c.guarded > 0 || guard.Refused == 0))
                .Label($"guarded={c.guarded} seed={c.seed} refused={guard.Refused} {string.Join("; ", results.SelectMany(r => r.Problems))}");
        });

    // guard in front of any chain of built-in taps the kit generates: data intact.
    [FsCheck.NUnit.Property(MaxTest = 5)]
    public Property Guard_InFrontOfAnyGeneratedChain_DataIntact() =>
        Prop.ForAll(Arb.From(ChainGenerators.Valid(ExampleTaps.CreateRegistry())), chainCase =>
        {
            using var resources = ChainResources.Create(chainCase); // the files and servers the chain names
            using var chain = ChainRig.Build(Registry(), resources.Context(new TapContext { Output = TextWriter.Null }),
                resources.Specs.Prepend("guard:sectors=4").ToArray());
            var results = Run(chain, chainCase.GetHashCode());
            return results.All(r => r.Mismatches == 0).Label(chainCase.ToString());
        });

    // The kit's chain rig over the test's chain; the emulator's verified workload checks reads against its model.
    private static IReadOnlyList<FrontendResult> Run(TapChain chain, int seed) =>
        Task.Run(async () =>
        {
            await using var rig = await ChainRig.StartAsync(2, chain.ToArray());
            return await new VerifiedWorkload(new WorkloadOptions
            {
                OperationsPerFrontend = 60, Seed = seed, MaxSectors = 16, TolerateErrors = true,
            }).RunAsync(rig.Rig);
        }).GetAwaiter().GetResult();
}
