using System.Diagnostics;
using BlkTap.Chains;
using BlkTap.Emulator.PowerCut.Internal;
using BlkTap.Storage;

namespace BlkTap.Emulator.PowerCut;

/// <summary>Settings of a <see cref="PowerCutSimulation"/> run.</summary>
public sealed class PowerCutOptions
{
    /// <summary>The run's seed; every cut's seed derives from it (<see cref="PowerCutSimulation.CutSeed"/>).</summary>
    public int Seed { get; set; } = 1;
    /// <summary>Power cuts to simulate (one fresh chain and storage each).</summary>
    public int Cuts { get; set; } = 500;
    /// <summary>The taps (img, aio and cow must be registered): <c>ExampleTaps.CreateRegistry()</c>.</summary>
    public required TapRegistry Registry { get; init; }
    /// <summary>Chains to cut, by name (<see cref="PowerCutSimulation.ChainNames"/>); null: all of them.</summary>
    public IReadOnlyList<string>? Chains { get; set; }
    /// <summary>Chains cut besides <see cref="PowerCutSimulation.ChainNames"/> (qcow2: the CLI's); cut by default too.</summary>
    public IReadOnlyList<PowerCutChain> ExtraChains { get; init; } = [];
    /// <summary>Size of the simulated disk in 512-byte sectors.</summary>
    public int DiskSectors { get; set; } = 256;
    /// <summary>Requests the workload issues per cut (fewer when the cut comes first).</summary>
    public int RequestsPerCut { get; set; } = 64;
    /// <summary>A storage that acknowledges syncs and keeps nothing (a lying disk): the checker must then report losses.</summary>
    public bool LyingFlushes { get; set; }
    /// <summary>
    /// Wraps the storage the chain sees before the cut (a test's fault: a disk that reorders or skips syncs); null: none.
    /// The chain is always reopened on the plain storage left by the cut.
    /// </summary>
    public Func<IStorageProvider, IStorageProvider>? WrapStorage { get; set; }
    /// <summary>Called after each cut with the cuts done.</summary>
    public Action<int>? Progress { get; set; }
}

/// <summary>One cut whose check failed, with what replays it (<see cref="PowerCutSimulation.RunCut"/> with its seed).</summary>
/// <param name="CutSeed">The cut's seed: it chooses the chain, the variant, the workload and the cut point.</param>
/// <param name="Chain">The chain cut (<see cref="PowerCutSimulation.ChainNames"/>).</param>
/// <param name="Variant">What survived the cut.</param>
/// <param name="Violations">Violations found in this cut.</param>
/// <param name="LostAfterFlush">Of those, sectors whose acknowledged and flushed data was missing.</param>
/// <param name="Description">What broke (the first few problems).</param>
public sealed record PowerCutFailure(int CutSeed, string Chain, PowerCutVariant Variant, long Violations, long LostAfterFlush, string Description);

/// <summary>What a power-cut run covered and found.</summary>
public sealed class PowerCutReport
{
    /// <summary>Cuts simulated.</summary>
    public int PowerCuts;
    /// <summary>Broken invariants: sectors holding what no model allows, failed reopens, requests failed before the cut, hangs.</summary>
    public long Violations;
    /// <summary>Sectors whose acknowledged-and-flushed (or FUA, or barrier) data was missing after a cut (counted in <see cref="Violations"/> too).</summary>
    public long LostAfterFlush;
    /// <summary>Writes (and discards) acknowledged before their cut.</summary>
    public long AcknowledgedWrites;
    /// <summary>Flushes and barriers that completed before their cut.</summary>
    public long CompletedFlushes;
    /// <summary>Cuts that came while requests were in flight.</summary>
    public int CutsWithRequestsInFlight;
    /// <summary>Cuts that tore a write.</summary>
    public int TornWrites;
    /// <summary>Sectors read back and checked after the cuts.</summary>
    public long SectorsChecked;
    /// <summary>Cuts by chain.</summary>
    public Dictionary<string, int> ByChain { get; } = new(StringComparer.Ordinal);
    /// <summary>Cuts by variant.</summary>
    public Dictionary<PowerCutVariant, int> ByVariant { get; } = new();
    /// <summary>The failing cuts (the first 10).</summary>
    public List<PowerCutFailure> Failures { get; } = new();
    /// <summary>Wall time.</summary>
    public TimeSpan Elapsed;
}

/// <summary>
/// Power-cut simulation of the storage taps: for each cut a chain (<c>img</c>, <c>aio</c>, <c>cow</c> over
/// <c>img</c>, <c>cow</c> over <c>aio</c>) on a fresh <see cref="PowerCutStorage"/> runs a seeded workload of writes,
/// FUA writes, flushes, barriers and discards through a <see cref="BufferSession"/>; the power is cut at a seeded
/// storage operation (inside a tap's flush, while aio's workers write, or at the end with requests in flight); the
/// chain is then reopened on what survived and every sector is read back and checked: it must hold the last write made
/// durable before the cut (acknowledged before a completed flush, a FUA write, a barrier) or a write issued after it.
/// Reopening must work (a cow overlay's header and map must be consistent, a map bit must point at written data).
/// </summary>
/// <remarks>
/// Every choice of a cut comes from its seed, so a failing cut replays with <see cref="RunCut"/>; for the
/// synchronous chains exactly, for aio up to its workers' timing.
/// Threading: runs on the caller's thread (the chain's loop runs there too; aio's workers are pool threads).
/// </remarks>
public static class PowerCutSimulation
{
    /// <summary>The chains a run cuts.</summary>
    public static IReadOnlyList<string> ChainNames { get; } = ["img", "aio", "cow+img", "cow+aio"];

    /// <summary>The simulated directory the images live in.</summary>
    public const string Directory = "/powercut";

    /// <summary>The seed of cut <paramref name="index"/> of a run seeded <paramref name="runSeed"/>.</summary>
    public static int CutSeed(int runSeed, int index) => unchecked(runSeed * 1_000_003 + index * 7919 + 211);

    /// <summary>The chains a run with <paramref name="options"/> cuts: <see cref="PowerCutOptions.Chains"/>, else the built-in and extra ones.</summary>
    public static IReadOnlyList<string> ChainsOf(PowerCutOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return options.Chains ?? [.. ChainNames, .. options.ExtraChains.Select(c => c.Name)];
    }

    /// <summary>The tap specs of chain <paramref name="chain"/> (frontend side first), built-in or one of <paramref name="options"/>' extra chains.</summary>
    public static IReadOnlyList<TapSpec> Specs(string chain, PowerCutOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return options.ExtraChains.FirstOrDefault(c => c.Name == chain) is { } extra ? extra.Taps.Select(TapSpec.Parse).ToList() : Specs(chain);
    }

    /// <summary>The tap specs of built-in chain <paramref name="chain"/> (frontend side first).</summary>
    public static IReadOnlyList<TapSpec> Specs(string chain)
    {
        string disk = $"{Directory}/disk.raw", overlay = $"cow:overlay={Directory}/overlay.cow,cluster=4K";
        string[] texts = chain switch
        {
            "img" => [$"img:path={disk}"],
            "aio" => [$"aio:path={disk},depth=8"],
            "cow+img" => [overlay, $"img:path={disk}"],
            "cow+aio" => [overlay, $"aio:path={disk},depth=8"],
            _ => throw new ArgumentException($"unknown power-cut chain '{chain}' (known: {string.Join(", ", ChainNames)})", nameof(chain)),
        };
        return texts.Select(TapSpec.Parse).ToList();
    }

    /// <summary>Runs <see cref="PowerCutOptions.Cuts"/> cuts.</summary>
    public static PowerCutReport Run(PowerCutOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var report = new PowerCutReport();
        var sw = Stopwatch.StartNew();
        for (int i = 0; i < options.Cuts; i++)
        {
            var failure = RunCut(options, CutSeed(options.Seed, i), report);
            if (failure != null && report.Failures.Count < 10) report.Failures.Add(failure);
            options.Progress?.Invoke(i + 1);
        }
        report.Elapsed = sw.Elapsed;
        return report;
    }

    /// <summary>Runs the cut of seed <paramref name="cutSeed"/>; null when every check held, else what broke. Adds to <paramref name="report"/> if given.</summary>
    public static PowerCutFailure? RunCut(PowerCutOptions options, int cutSeed, PowerCutReport? report = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        return new PowerCutRound(options, cutSeed).Run(report ?? new PowerCutReport());
    }
}
