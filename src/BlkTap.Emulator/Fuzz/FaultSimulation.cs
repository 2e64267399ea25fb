using System.Diagnostics;

namespace BlkTap.Emulator;

/// <summary>The kinds of round a <see cref="FaultSimulation"/> runs.</summary>
public enum FaultRoundKind
{
    /// <summary>dom0 tap whose terminator's storage fails at seeded moments (<see cref="FaultyBlockDevice"/>).</summary>
    TerminatorFaults,
    /// <summary>
    /// Interposition placement (the tap in its own domain in front of dom0's blkback, whose storage may
    /// also fail): the tap domain's blkfront to blkback is torn down at a seeded scheduler step.
    /// </summary>
    TapFrontendDeath,
}

/// <summary>Settings of a <see cref="FaultSimulation"/> run.</summary>
public sealed class FaultSimulationOptions
{
    /// <summary>Seed of the run; each round's seed derives from it.</summary>
    public int Seed { get; set; } = 1;
    /// <summary>Rounds (one fresh emulated system each).</summary>
    public int Rounds { get; set; } = 100;
    /// <summary>Honest operations per guest per round.</summary>
    public int OperationsPerGuest { get; set; } = 6;
    /// <summary>Honest guests per round.</summary>
    public int Guests { get; set; } = 2;
    /// <summary>Probability that one storage call fails.</summary>
    public double DeviceFailRate { get; set; } = 0.1;
    /// <summary>
    /// Interposers to register in front of the storage (an interposer chain under test; its hooks run
    /// after the reordering chaos hook). Null: only the chaos hook.
    /// </summary>
    public Action<TapRuntime>? Configure { get; init; }
}

/// <summary>What a fault simulation covered and found.</summary>
public sealed class FaultSimulationReport
{
    /// <summary>Rounds run, by kind.</summary>
    public Dictionary<FaultRoundKind, int> Rounds { get; } = new();
    /// <summary>Honest operations completed (OKAY or ERROR).</summary>
    public long Operations;
    /// <summary>Storage failures injected.</summary>
    public long DeviceFailures;
    /// <summary>Guest operations answered ERROR.</summary>
    public long ErrorsSeen;
    /// <summary>Tap frontends torn down with requests in flight (at least one outstanding at the moment of death).</summary>
    public int DeathsWithRequestsInFlight;
    /// <summary>Event notifications that found the channel already pending (many notifies, one delivery).</summary>
    public long CoalescedNotifications;
    /// <summary>Requests reordered by the chaos hook.</summary>
    public long Delayed;
    /// <summary>Invariant violations: (round seed, round kind, what broke).</summary>
    public List<(int RoundSeed, FaultRoundKind Kind, string Description)> Failures { get; } = new();
    /// <summary>Wall time.</summary>
    public TimeSpan Elapsed;
}

/// <summary>
/// Deterministic fault simulation of the backend side (the FoundationDB/TigerBeetle way: one thread,
/// every choice from the round's seed, so any failing round replays exactly with
/// <see cref="RunRound"/>). Two kinds of round alternate:
/// <list type="bullet">
/// <item><see cref="FaultRoundKind.TerminatorFaults"/>: the terminator's storage returns EIO at seeded
/// calls. Invariants: every guest operation completes; errors never exceed injected failures; reads
/// that succeed equal the model (a failed write changed nothing); nothing stays in flight.</item>
/// <item><see cref="FaultRoundKind.TapFrontendDeath"/>: the tap runs in its own domain and forwards to
/// dom0's blkback through <see cref="XenbusBlockFrontend"/> (the vbd tap's lower end); at a seeded step that frontend is torn down mid-flight. Invariants: no guest hangs
/// (the deterministic scheduler proves it: idle before completion is a failure), every operation in
/// flight and every later one is answered ERROR, successful reads still equal the model, the guests'
/// rings stay healthy.</item>
/// </list>
/// Every round also sums the event channels' coalesced notifications, so a run shows that coalescing
/// (many notifies, one delivery) was exercised; the reorderings come from <see cref="ChaosHook"/>.
/// </summary>
/// <remarks>
/// The honest workload keeps every request to one segment (at most 8 sectors, page aligned): a failed
/// multi-segment write may be partly done, as on a real disk, which a byte-exact model cannot follow.
/// Threading: runs on the caller's thread.
/// </remarks>
public static class FaultSimulation
{
    // Small disks: the workload first reads its whole slice, one storage call per page, and a long
    // read at a 10% failure rate per call would almost never succeed.
    private const int DiskBytes = 64 * 512;

    /// <summary>Runs <see cref="FaultSimulationOptions.Rounds"/> rounds.</summary>
    public static FaultSimulationReport Run(FaultSimulationOptions options)
    {
        var report = new FaultSimulationReport();
        var sw = Stopwatch.StartNew();
        for (int round = 0; round < options.Rounds; round++)
        {
            int seed = RoundSeed(options.Seed, round);
            var kind = KindOf(seed);
            report.Rounds[kind] = report.Rounds.GetValueOrDefault(kind) + 1;
            var error = RunRound(options, seed, report);
            if (error != null && report.Failures.Count < 10) report.Failures.Add((seed, kind, error));
        }
        report.Elapsed = sw.Elapsed;
        return report;
    }

    /// <summary>The seed of round <paramref name="round"/> of a run seeded <paramref name="runSeed"/>.</summary>
    public static int RoundSeed(int runSeed, int round) => unchecked(runSeed * 1_000_003 + round * 7919 + 101);

    /// <summary>Which kind of round a round seed runs.</summary>
    public static FaultRoundKind KindOf(int roundSeed) => (roundSeed & 1) == 0 ? FaultRoundKind.TerminatorFaults : FaultRoundKind.TapFrontendDeath;

    /// <summary>Runs one round; null when every invariant held, else what broke.</summary>
    public static string? RunRound(FaultSimulationOptions options, int seed, FaultSimulationReport? report = null)
    {
        try
        {
            return KindOf(seed) == FaultRoundKind.TerminatorFaults
                ? TerminatorRound(options, seed, report).GetAwaiter().GetResult()
                : DeathRound(options, seed, report).GetAwaiter().GetResult();
        }
        catch (Exception ex) { return $"exception escaped: {ex.GetType().Name}: {ex.Message}"; }
    }

    private static WorkloadOptions Workload(FaultSimulationOptions options, int seed, Random random) => new()
    {
        OperationsPerFrontend = options.OperationsPerGuest,
        QueueDepth = 1 + random.Next(8),
        MaxSectors = 8,
        Seed = seed,
        SharedDisk = true,
        TolerateErrors = true,
    };

    private static async Task<string?> TerminatorRound(FaultSimulationOptions options, int seed, FaultSimulationReport? report)
    {
        var random = new Random(seed);
        var device = new FaultyBlockDevice(new MemoryBlockDevice(DiskBytes), seed, options.DeviceFailRate);
        var chaos = new ChaosHook(seed, delayRate: 0.2, failRate: 0);
        var diagnostics = new List<TapDiagnostic>();
        await using var rig = await EmulatorRig.StartAsync(new EmulatorRigOptions
        {
            Frontends = options.Guests,
            Deterministic = true,
            Seed = seed,
            RandomFirstSector = false,
            Protocol = random.Next(2) == 0 ? BlkifProtocol.X86_64 : BlkifProtocol.X86_32,
            Diagnostics = diagnostics.Add,
        }, rt =>
        {
            rt.RegisterRequestHook("chaos", chaos);
            options.Configure?.Invoke(rt);
            // The connect itself must not fail: the storage starts failing once every guest is up.
            var serve = new BlockDeviceHook(device);
            rt.RegisterControlHook("storage", serve);
            rt.RegisterRequestHook("storage", serve);
        });
        chaos.Post = rig.Emulator.Post;
        IReadOnlyList<FrontendResult> results = [];
        await rig.Execute(async () => results = await new VerifiedWorkload(Workload(options, seed, random)).RunInsideAsync(rig.Frontends));
        rig.Emulator.RunUntilIdle();
        var problems = new List<string>();
        foreach (var r in results)
        {
            if (r.Mismatches != 0) problems.Add($"{r.Name}: {r.Mismatches} reads differ from the model: {string.Join("; ", r.Problems)}");
            if (r.Operations != options.OperationsPerGuest && !r.Problems.Any(p => p.StartsWith("initial read", StringComparison.Ordinal)))
                problems.Add($"{r.Name}: {r.Operations} of {options.OperationsPerGuest} operations completed");
        }
        long errors = results.Sum(r => r.Errors);
        if (errors > device.Failures) problems.Add($"{errors} error answers but the storage failed only {device.Failures} times: {string.Join("; ", results.SelectMany(r => r.Problems))}");
        CommonChecks(rig, diagnostics, problems);
        if (report != null)
        {
            report.Operations += results.Sum(r => r.Operations);
            report.DeviceFailures += device.Failures;
            report.ErrorsSeen += errors;
            report.Delayed += chaos.Delayed;
            report.CoalescedNotifications += Coalesced(rig);
        }
        return problems.Count == 0 ? null : string.Join(" | ", problems.Take(5));
    }

    private static async Task<string?> DeathRound(FaultSimulationOptions options, int seed, FaultSimulationReport? report)
    {
        var random = new Random(seed);
        var device = new FaultyBlockDevice(new MemoryBlockDevice(DiskBytes), seed, random.Next(2) == 0 ? 0 : options.DeviceFailRate);
        var chaos = new ChaosHook(seed, delayRate: 0.2, failRate: 0);
        var diagnostics = new List<TapDiagnostic>();
        await using var rig = await EmulatorRig.StartAsync(new EmulatorRigOptions
        {
            Frontends = options.Guests,
            Deterministic = true,
            Seed = seed,
            RandomFirstSector = false,
            BlkbackDevice = device,
            Diagnostics = diagnostics.Add,
        }, rt =>
        {
            rt.RegisterRequestHook("chaos", chaos);
            options.Configure?.Invoke(rt);
        });
        chaos.Post = rig.Emulator.Post;
        var tapFront = (XenbusBlockFrontend)rig.Runtime.Backend!;
        int deathStep = random.Next(1, 80);
        bool dead = false, inFlightAtDeath = false;
        IReadOnlyList<FrontendResult> results = [];
        var afterDeath = new List<BlkifStatus>();
        await rig.Execute(async () =>
        {
            // The killer: after deathStep scheduler hops, tear the tap domain's blkfront down.
            void Later(int hops)
            {
                if (hops > 0) { rig.Emulator.Post(() => Later(hops - 1)); return; }
                inFlightAtDeath = tapFront.Outstanding > 0;
                dead = true;
                tapFront.Dispose();
            }
            Later(deathStep);
            results = await new VerifiedWorkload(Workload(options, seed, random)).RunInsideAsync(rig.Frontends);
            // Make sure the death happened, then every guest must get ERROR (not a hang) for new requests.
            while (!dead || tapFront.IsConnected) await Task.Yield();
            foreach (var f in rig.Frontends) afterDeath.Add(await f.ReadAsync(0, new byte[4096]));
            foreach (var f in rig.Frontends) afterDeath.Add(await f.WriteAsync(8, new byte[4096]));
        });
        rig.Emulator.RunUntilIdle();
        var problems = new List<string>();
        foreach (var r in results)
            if (r.Mismatches != 0) problems.Add($"{r.Name}: {r.Mismatches} reads differ from the model: {string.Join("; ", r.Problems)}");
        if (afterDeath.Any(s => s != BlkifStatus.Error)) problems.Add($"after the tap's frontend died, guests got [{string.Join(", ", afterDeath)}], expected ERROR each");
        CommonChecks(rig, diagnostics, problems);
        if (report != null)
        {
            report.Operations += results.Sum(r => r.Operations);
            report.DeviceFailures += device.Failures;
            report.ErrorsSeen += results.Sum(r => r.Errors);
            report.Delayed += chaos.Delayed;
            report.CoalescedNotifications += Coalesced(rig);
            if (inFlightAtDeath) report.DeathsWithRequestsInFlight++;
        }
        return problems.Count == 0 ? null : string.Join(" | ", problems.Take(5));
    }

    private static void CommonChecks(EmulatorRig rig, List<TapDiagnostic> diagnostics, List<string> problems)
    {
        if (rig.Runtime.InFlight != 0) problems.Add($"{rig.Runtime.InFlight} requests never answered");
        foreach (var f in rig.Frontends)
            if (f.IsBroken || f.Outstanding != 0) problems.Add($"guest dom{f.Domain.Id}: {(f.IsBroken ? "broken: " + f.BrokenReason : f.Outstanding + " requests outstanding")}");
        foreach (var d in diagnostics)
            if (d.Exception != null) problems.Add($"exception inside the loop: {d}");
        if (rig.Emulator.Faults.Count > 0) problems.Add($"emulator callback faults: {string.Join("; ", rig.Emulator.Faults.Select(e => e.Message))}");
    }

    private static long Coalesced(EmulatorRig rig)
    {
        long n = 0;
        foreach (var f in rig.Frontends) n += f.EventChannel?.Coalesced ?? 0;
        // The backends' ends: ports are numbered from 1 in each domain.
        for (uint port = 1; port < 64; port++)
            if (rig.Emulator.Dom0.EventChannels.Find(port) is { } c) n += c.Coalesced;
        return n;
    }
}
