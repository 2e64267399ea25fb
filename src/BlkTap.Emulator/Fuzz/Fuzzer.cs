using System.Diagnostics;

namespace BlkTap.Emulator;

/// <summary>
/// Generated request streams from several emulated guests (honest, hostile, dying) through a chain in
/// deterministic mode, with seeded fault injection, checking the invariants: every accepted request
/// gets exactly one response; honest data equals the model; malformed requests get ERROR/EOPNOTSUPP
/// and touch nothing; a guest that breaks the ring protocol is closed and nobody else notices; no
/// exception escapes the loop. A failing round is shrunk to the fewest requests that still fail.
/// </summary>
/// <remarks>
/// Threading: each round runs one deterministic emulator on one thread; <see cref="Run"/> runs
/// <see cref="FuzzOptions.Parallelism"/> rounds at once on pool threads and returns when all are done;
/// <see cref="RunRound"/> runs on the caller's thread.
/// </remarks>
public static class Fuzzer
{
    /// <summary>Failures after which a run stops (each is shrunk, which reruns its round many times).</summary>
    private const int MaxFailures = 5;

    /// <summary>The seed of round <paramref name="round"/> of a run seeded <paramref name="runSeed"/>.</summary>
    public static int RoundSeed(int runSeed, int round) => unchecked(runSeed * 1_000_003 + round * 7919 + 17);

    /// <summary>
    /// Runs rounds until <see cref="FuzzOptions.Iterations"/> hostile requests were checked (or
    /// five rounds failed), <see cref="FuzzOptions.Parallelism"/> at a time. Rounds run in
    /// batches and are merged in round order, stopping at the same round whatever the parallelism, so a run's
    /// report depends only on its options.
    /// </summary>
    public static FuzzReport Run(FuzzOptions options)
    {
        var report = new FuzzReport();
        var sw = Stopwatch.StartNew();
        int workers = Math.Max(1, options.Parallelism);
        // A round checks about half its requests as hostile ones (fewer when the hostile guest breaks the ring).
        long hostilePerRound = Math.Max(1, options.RequestsPerRound / 2);
        int next = 0;
        while (report.HostileRequests < options.Iterations && report.Failures.Count < MaxFailures)
        {
            long left = options.Iterations - report.HostileRequests;
            int batch = (int)Math.Clamp((left + hostilePerRound - 1) / hostilePerRound, 1, workers * 16L);
            var outcomes = new (FuzzReport Report, string? Error)[batch];
            int first = next;
            if (workers == 1 || batch == 1)
            {
                for (int i = 0; i < batch; i++) outcomes[i] = RunCounted(options, RoundSeed(options.Seed, first + i));
            }
            else
            {
                Parallel.For(0, batch, new ParallelOptions { MaxDegreeOfParallelism = workers },
                    i => outcomes[i] = RunCounted(options, RoundSeed(options.Seed, first + i)));
            }
            next += batch;
            for (int i = 0; i < batch; i++)
            {
                // Rounds past the target are dropped, so the report is the same for any batch size.
                if (report.HostileRequests >= options.Iterations || report.Failures.Count >= MaxFailures) break;
                var (roundReport, error) = outcomes[i];
                report.Add(roundReport);
                report.Rounds++;
                if (error != null)
                {
                    int seed = RoundSeed(options.Seed, first + i);
                    int smallest = Shrink(options, seed, options.RequestsPerRound);
                    report.Failures.Add(new FuzzFailure(seed, smallest, RunRound(options, seed, smallest, null) ?? error));
                }
            }
            options.Progress?.Invoke(report.Rounds, report.HostileRequests);
        }
        report.Elapsed = sw.Elapsed;
        return report;
    }

    private static (FuzzReport, string?) RunCounted(FuzzOptions options, int seed)
    {
        var roundReport = new FuzzReport();
        return (roundReport, RunRound(options, seed, options.RequestsPerRound, roundReport));
    }

    private static int Shrink(FuzzOptions options, int seed, int n)
    {
        int lo = 1, hi = n;
        // The smallest request count that still fails (rounds are deterministic in their seed and count).
        while (lo < hi)
        {
            int mid = (lo + hi) / 2;
            if (RunRound(options, seed, mid, null) != null) hi = mid; else lo = mid + 1;
        }
        return hi;
    }

    /// <summary>Runs one round; returns null when every invariant held, else what broke.</summary>
    public static string? RunRound(FuzzOptions options, int seed, int requests, FuzzReport? report)
    {
        try { return RunRoundAsync(options, seed, requests, report).GetAwaiter().GetResult(); }
        catch (Exception ex) { return $"exception escaped: {ex.GetType().Name}: {ex.Message}"; }
    }

    private static async Task<string?> RunRoundAsync(FuzzOptions options, int seed, int requests, FuzzReport? report)
    {
        TapRuntime? configured = null;
        try { return await RunSystemAsync(options, seed, requests, report, rt => configured = rt); }
        finally { if (configured != null) options.Release?.Invoke(configured); }
    }

    private static async Task<string?> RunSystemAsync(FuzzOptions options, int seed, int requests, FuzzReport? report, Action<TapRuntime> configured)
    {
        var random = new Random(seed);
        bool breakRing = random.NextDouble() < 0.2;
        bool killVictim = random.NextDouble() < 0.2;
        int honest = options.HonestFrontends;
        int frontends = honest + 1 + (killVictim ? 1 : 0);
        var chaos = new ChaosHook(seed, options.DelayRate, options.FailRate);
        var diagnostics = new List<TapDiagnostic>();
        await using var rig = await EmulatorRig.StartAsync(new EmulatorRigOptions
        {
            Frontends = frontends,
            Deterministic = true,
            Seed = seed,
            Protocol = random.Next(2) == 0 ? BlkifProtocol.X86_64 : BlkifProtocol.X86_32,
            Diagnostics = d => diagnostics.Add(d),
        }, rt =>
        {
            configured(rt);
            rt.RegisterRequestHook("chaos", chaos);
            options.Configure(rt);
        });
        chaos.Post = rig.Emulator.Post;
        var honestFronts = rig.Frontends.Take(honest).ToList();
        var hostile = rig.Frontends[honest];
        var victim = killVictim ? rig.Frontends[honest + 1] : null;
        chaos.Exempt.Add(hostile.Domain.Id);
        if (victim != null) chaos.Exempt.Add(victim.Domain.Id);
        if (hostile.Sectors < 128) return $"the chain gave the disk only {hostile.Sectors} sectors; the fuzzer needs at least 128";

        int honestOps = Math.Max(1, requests / 2 / honest);
        int hostileOps = Math.Max(1, requests - honestOps * honest);
        var workload = new VerifiedWorkload(new WorkloadOptions
        {
            OperationsPerFrontend = honestOps, QueueDepth = 1 + random.Next(8), MaxSectors = 32, Seed = seed, SharedDisk = true,
            TolerateErrors = true,
            Slices = honest + 1, // the last slice belongs to the hostile and the dying guests
        });
        ulong slice = hostile.Sectors / (ulong)(honest + 1);
        ulong hostileStart = slice * (ulong)honest;
        var hostileProblems = new List<string>();
        long hostileChecked = 0;
        bool broke = false;
        IReadOnlyList<FrontendResult>? results = null;
        await rig.Execute(async () =>
        {
            var honestTask = workload.RunInsideAsync(honestFronts);
            var hostileTask = RunHostile(hostile, random, hostileStart, slice, hostileOps, breakRing, hostileProblems, report, () => broke = true, c => hostileChecked += c);
            if (victim != null)
            {
                // A guest with writes in flight is destroyed: its requests may or may not complete; nobody else may notice.
                var buffer = new byte[4096];
                for (int i = 0; i < 8; i++) _ = victim.WriteAsync(hostileStart + (ulong)(i * 8) % slice, buffer);
                rig.Emulator.Post(() => rig.Emulator.DestroyDomain(victim.Domain.Id));
            }
            results = await honestTask;
            await hostileTask;
        });
        // Let everything in flight settle.
        rig.Emulator.RunUntilIdle();

        var problems = new List<string>();
        foreach (var r in results ?? [])
        {
            var injected = chaos.Failed.TryGetValue(ushort.Parse(r.Name.AsSpan(3)), out var f) ? f : 0;
            if (r.Mismatches != 0) problems.Add($"{r.Name}: {r.Mismatches} reads differ from the model: {string.Join("; ", r.Problems)}");
            if (r.Operations != honestOps) problems.Add($"{r.Name}: {r.Operations} of {honestOps} operations completed");
            // An operation may span several ring requests and the initial read retries, so each failed
            // operation needs at least one injected failure: more failures than injections is a real error.
            if (r.Errors > injected) problems.Add($"{r.Name}: {r.Errors} error answers but the chaos hook injected only {injected}: {string.Join("; ", r.Problems)}");
        }
        problems.AddRange(hostileProblems);
        if (rig.Runtime.InFlight != 0) problems.Add($"{rig.Runtime.InFlight} requests never answered");
        foreach (var f in honestFronts)
            if (f.IsBroken || f.Outstanding != 0) problems.Add($"honest dom{f.Domain.Id}: {(f.IsBroken ? "broken: " + f.BrokenReason : f.Outstanding + " requests outstanding")}");
        if (broke && rig.Runtime.Sessions.Any(s => s.DomainId == hostile.Domain.Id))
            problems.Add("the guest that broke the ring protocol still has an open session");
        if (victim != null && rig.Runtime.Sessions.Any(s => s.DomainId == victim.Domain.Id))
            problems.Add("the destroyed guest still has an open session");
        foreach (var d in diagnostics.Where(d => d.Exception != null))
            problems.Add($"exception inside the loop: {d}");
        if (rig.Emulator.Faults.Count > 0) problems.Add($"emulator callback faults: {string.Join("; ", rig.Emulator.Faults.Select(e => e.Message))}");

        if (report != null)
        {
            report.HonestOperations += (results ?? []).Sum(r => r.Operations);
            report.HostileRequests += hostileChecked;
            if (broke) report.ProtocolBreaks++;
            if (victim != null) report.DomainDeaths++;
            report.Delayed += chaos.Delayed;
            report.InjectedFailures += chaos.Failed.Values.Sum();
        }
        return problems.Count == 0 ? null : string.Join(" | ", problems.Take(5));
    }

    private static async Task RunHostile(BlkFront front, Random random, ulong sliceStart, ulong sliceSectors, int count, bool breakRing, List<string> problems,
        FuzzReport? report, Action onBreak, Action<long> onChecked)
    {
        var writable = front.Domain.AllocatePages();
        var readOnly = front.Domain.AllocatePages();
        uint w = front.Domain.Grants.GrantAccess(0, writable, readOnly: false);
        uint ro = front.Domain.Grants.GrantAccess(0, readOnly, readOnly: true);
        var generator = new HostileRequestGenerator(random, front.Sectors, sliceStart, sliceSectors, w, ro);
        int breakAt = breakRing ? random.Next(count) : -1;
        var bytes = new byte[front.Layout.RequestSize];
        var pending = new List<(Task<BlkifResponse> Task, GeneratedRequest Request)>();
        for (int i = 0; i < count; i++)
        {
            if (i == breakAt)
            {
                // Let the frontend go idle first, or its own next push would repair req_prod.
                await CheckAll(pending, problems, onChecked);
                unsafe
                {
                    var ring = front.Ring!;
                    Volatile.Write(ref *(uint*)ring.Address, ring.RequestProducerPrivate + ring.Size + 1 + (uint)random.Next(1 << 20));
                }
                front.EventChannel?.Notify();
                onBreak();
                break;
            }
            if (random.Next(10) == 0)
            {
                front.EventChannel?.Notify(); // spurious
                if (report != null) report.SpuriousNotifications++;
            }
            var g = generator.Next();
            BlkifCodec.EncodeRequest(g.Request, front.Layout, bytes);
            pending.Add((front.SubmitRaw(bytes), g));
            if (report != null) report.HostileKinds[g.Kind] = report.HostileKinds.GetValueOrDefault(g.Kind) + 1;
            if (pending.Count >= 16 || random.Next(4) == 0)
            {
                await CheckAll(pending, problems, onChecked);
            }
        }
        if (breakAt < 0) await CheckAll(pending, problems, onChecked);
    }

    private static async Task CheckAll(List<(Task<BlkifResponse> Task, GeneratedRequest Request)> pending, List<string> problems, Action<long> onChecked)
    {
        foreach (var (t, g) in pending)
        {
            BlkifResponse r;
            try { r = await t; }
            catch (BlkFrontException ex) { problems.Add($"hostile guest broken by the backend: {ex.Message}"); continue; }
            Check(r, g, problems);
        }
        onChecked(pending.Count);
        pending.Clear();
    }

    private static void Check(BlkifResponse r, GeneratedRequest g, List<string> problems)
    {
        if (r.Status != g.Expected && problems.Count < 10)
            problems.Add($"hostile {g.Kind} ({BlkifRequestDescription(g.Request)}) answered {r.Status}, expected {g.Expected}");
    }

    private static string BlkifRequestDescription(in BlkifRequest r) =>
        $"op {(byte)r.Operation} sector {r.Sector} segs {r.SegmentCount}{(r.SegmentCount > 0 ? $" [{r.Segments[0].GrantRef}:{r.Segments[0].FirstSector}-{r.Segments[0].LastSector}]" : "")}";
}
