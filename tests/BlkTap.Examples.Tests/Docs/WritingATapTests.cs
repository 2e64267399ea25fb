using System.Collections.Concurrent;
using System.IO.Hashing;
using BlkTap.Chains;
using BlkTap.Emulator;
using BlkTap.Examples;
using BlkTap.Testing;
using FsCheck;
using FsCheck.Fluent;
using NUnit.Framework;
using BlkTap.Testing.Fuzz;
using BlkTap.Testing.Generators;

namespace BlkTap.Examples.Tests.Docs;

// The code of docs/writing-a-tap.md, verbatim: if this file stops compiling or passing, the doc is wrong.

// --- doc: the factory ---
public sealed class AuditTapFactory : ITapFactory
{
    public string Name => "audit";
    public string Description => "log a CRC-32 of every write, computed off the loop";
    public bool IsTerminator => false;
    public IReadOnlyList<TapOptionInfo> Options { get; } = [];
    public ITap Create(TapSpec spec, TapContext context) => new AuditTap(context.Output);
}

// --- doc: the tap ---
public sealed class AuditTap(TextWriter log) : TapBase("audit"), IRequestHook
{
    public ConcurrentQueue<(ulong Sector, uint Crc)> Entries { get; } = new();

    public HookResult OnRequest(TapRequest request)
    {
        if (request.Operation != BlkifOperation.Write) return HookResult.Pass;
        // Slow work never runs on the loop: steal the request, work elsewhere, then Resume it.
        Task.Run(() =>
        {
            var crc = new Crc32();
            for (int i = 0; i < request.SegmentCount; i++) crc.Append(request.SegmentData(i));
            uint value = crc.GetCurrentHashAsUInt32();
            Entries.Enqueue((request.Sector, value));
            lock (log) log.WriteLine($"write {request.Sector}+{request.SectorCount} crc32 {value:x8}");
            request.Runtime.Resume(request); // on to the next hook; after this, do not touch request
        });
        return HookResult.Stolen;
    }
}

public class WritingATapTests
{
    // --- doc: property-testing a new tap ---
    [FsCheck.NUnit.Property(MaxTest = 8)]
    public bool AuditTap_AnyWorkload_DataIntactAndEveryWriteAudited(PositiveInt seed)
    {
            int s = seed.Get;
            var registry = ExampleTaps.CreateRegistry();
            registry.Add(new AuditTapFactory(), "doc");
            var chain = registry.Build([TapSpec.Parse("audit"), TapSpec.Parse("mem:size=4M")], new TapContext { Output = TextWriter.Null });
            var results = RunWorkload(chain, s);
            var audit = (AuditTap)chain[0];
            chain.Dispose(); // the chain owns its taps: disposes each once, terminator first
            return results.All(r => r.Mismatches == 0 && r.Errors == 0)
                && audit.Entries.Count >= results.Sum(r => r.Writes);
    }

    // --- doc: property-testing an existing tap with the generators ---
    [FsCheck.NUnit.Property(MaxTest = 10)]
    public Property ErrorTap_AnyRateAndSeed_FailedWritesNeverReachTheDisk() =>
        Prop.ForAll(Arb.From(
            from rate in Gen.Elements("0", "0.05", "0.3", "1")
            from seed in Gen.Choose(1, 10_000)
            select (rate, seed)), c =>
        {
            var chain = ExampleTaps.CreateRegistry().Build(
                [TapSpec.Parse($"error:rate={c.rate},ops=write,seed={c.seed}"), TapSpec.Parse("mem:size=4M")], new TapContext());
            var results = RunWorkload(chain, c.seed, tolerateErrors: true);
            var error = (ErrorTap)chain[0];
            chain.Dispose(); // the chain owns its taps: disposes each once, terminator first
            // The model ignores failed writes, so any read that differs means a failed write reached the disk.
            return results.All(r => r.Mismatches == 0 && r.Errors <= error.Failed)
                && (c.rate != "0" || error.Failed == 0);
        });

    // A generated chain of built-in taps, with the audit tap in front: still exact.
    [FsCheck.NUnit.Property(MaxTest = 10)]
    public Property AuditTap_InFrontOfAnyGeneratedChain_DataIntact() =>
        Prop.ForAll(Arb.From(ChainGenerators.Valid(ExampleTaps.CreateRegistry())), chainCase =>
        {
            using var resources = ChainResources.Create(chainCase); // the files, NBD servers and vbd the chain names
            var registry = ExampleTaps.CreateRegistry();
            registry.Add(new AuditTapFactory(), "doc");
            var chain = registry.Build(resources.Specs.Prepend("audit").Select(TapSpec.Parse).ToList(), resources.Context(new TapContext { Output = TextWriter.Null }));
            var results = RunWorkload(chain, chainCase.GetHashCode());
            chain.Dispose(); // the chain owns its taps: disposes each once, terminator first
            return results.All(r => r.Mismatches == 0 && r.Errors == 0).Label(chainCase.ToString());
        });

    [Test]
    public void WritingATapDoc_EveryCodeLine_IsInThisTestFile()
    {
        var doc = File.ReadAllText(Path.Combine(FuzzHarness.RepoRoot, "docs", "writing-a-tap.md"));
        // This file, and the sample plugin tap with its property tests (built and run with the solution).
        var source = string.Join("\n", new[]
        {
            Path.Combine("tests", "BlkTap.Examples.Tests", "Docs", "WritingATapTests.cs"),
            Path.Combine("samples", "GuardTap", "GuardTap.cs"),
            Path.Combine("samples", "GuardTap.Tests", "GuardTapTests.cs"),
        }.Select(f => File.ReadAllText(Path.Combine(FuzzHarness.RepoRoot, f))));
        var blocks = doc.Split("```csharp").Skip(1).Select(b => b[..b.IndexOf("```", StringComparison.Ordinal)]).ToList();
        Assert.That(blocks, Has.Count.GreaterThanOrEqualTo(6));
        foreach (var line in blocks.SelectMany(b => b.Split('\n')).Select(l => l.Trim()).Where(l => l.Length > 0 && !l.Contains("...", StringComparison.Ordinal)))
            Assert.That(source, Does.Contain(line), "docs/writing-a-tap.md shows code that the tests do not run");
    }

    private static IReadOnlyList<FrontendResult> RunWorkload(IReadOnlyList<ITap> chain, int seed, bool tolerateErrors = false) =>
        Task.Run(async () =>
        {
            // Threaded rig: the audit tap resumes from the thread pool, as it would on Xen.
            await using var rig = await EmulatorRig.StartAsync(new EmulatorRigOptions { Frontends = 2, Seed = seed },
                rt => TapChain.Register(rt, chain));
            return await new VerifiedWorkload(new WorkloadOptions
            {
                OperationsPerFrontend = 60, Seed = seed, MaxSectors = 32, TolerateErrors = tolerateErrors,
            }).RunAsync(rig);
        }).GetAwaiter().GetResult();
}
