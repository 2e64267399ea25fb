using System.Diagnostics;
using BlkTap.Chains;
using BlkTap.Emulator;
using BlkTap.Examples;

namespace BlkTap.Bench;

/// <summary>
/// The whole emulated system: guest domains whose <see cref="BlkFront"/> grants pages and pushes ring requests, event
/// channels, the xenbus backend and the tap in dom0 with the <c>mem</c> terminator; 4 KiB random reads at queue depth
/// 32 per guest. Two schedulings: threaded (the tap's loop, the emulator's hypervisor thread and the guests on the
/// thread pool: what <c>blktap run</c> uses) and deterministic (everything on one thread, one core: what the property
/// tests use). The baseline is the same chain in the ring harness with no emulator (the runtime's ceiling).
/// </summary>
/// <remarks>Threading: the bench command's thread drives each rig; nothing here is shared between rigs.</remarks>
internal static class EmulatorBenchmarks
{
    private const int QueueDepth = 32;

    public static IEnumerable<BenchResult> Run(BenchContext ctx)
    {
        int ops = ctx.Quick ? 2_000 : 400_000;
        int rounds = ctx.Quick ? 1 : 3;
        double ceiling = ctx.MemTerminatorReadRate;
        const string baseline = "the mem terminator in the ring harness, no emulator (the runtime's ceiling)";
        foreach (bool deterministic in new[] { false, true })
        {
            foreach (int frontends in new[] { 1, 4 })
            {
                string mode = deterministic ? "deterministic, one thread" : "threaded";
                ctx.Progress($"emulator: {mode}, {frontends} frontend(s)");
                var m = MeasureAsync(frontends, deterministic, ops / frontends, rounds).GetAwaiter().GetResult();
                string alloc = deterministic
                    ? $"{m.ProcessBytesPerRequest:F0} B/req allocated in all (guests' tasks included; the tap and the guests share the thread)"
                    : $"{m.LoopBytesPerRequest:F1} B/req allocated on the tap's loop thread, {m.ProcessBytesPerRequest:F0} B/req in the whole process (guests' tasks)";
                yield return new BenchResult($"emulator ({mode}): mem terminator, {frontends} frontend{(frontends > 1 ? "s" : "")}, qd {QueueDepth} each, 4 KiB reads",
                    m.Rate, ceiling > 0 ? ceiling : null, "req/s", baseline, Note: $"median of {rounds} round(s) of {ops:N0} requests; {alloc}");
                if (!deterministic && frontends == 1)
                    yield return new BenchResult("emulator: bytes allocated per request on the tap's loop thread (steady state)", m.LoopBytesPerRequest, null, "B/req",
                        "goal 0 (guests, grant tables and event channels emulated)", HigherIsBetter: false);
            }
        }
    }

    /// <summary>
    /// One rig's figures: the median rate, the most bytes allocated per request (tap loop, whole process) and the grant
    /// map plus unmap operations per request (the emulator's counters) in the round that did most of them.
    /// </summary>
    internal sealed record Measurement(double Rate, double LoopBytesPerRequest, double ProcessBytesPerRequest, double GrantOperationsPerRequest = 0);

    /// <summary>
    /// Measures <paramref name="rounds"/> rounds of 4 KiB random reads after a warm-up; <paramref name="configure"/>
    /// may change the rig's options (the backend's offer, the frontends' wishes) before it starts.
    /// </summary>
    internal static async Task<Measurement> MeasureAsync(int frontends, bool deterministic, int opsPerFrontend, int rounds, Action<EmulatorRigOptions>? configure = null)
    {
        var mem = new MemTap(64L << 20, shared: false, readOnly: false);
        try
        {
            var options = new EmulatorRigOptions { Frontends = frontends, Deterministic = deterministic, RandomFirstSector = false, Seed = 7 };
            configure?.Invoke(options);
            await using var rig = await EmulatorRig.StartAsync(options, rt => TapChain.Register(rt, [mem]));
            // Written once, so the reads copy data rather than zeroes of never-written chunks.
            await rig.Execute(() => Task.WhenAll(rig.Frontends.Select(f => Workers(f, 4096 / QueueDepth, BlkifOperation.Write, 99))));
            await Round(rig, Math.Max(QueueDepth, opsPerFrontend / 4)); // warm up: JIT tiering, pools
            var rates = new List<double>();
            double loopBytes = 0, processBytes = 0, grantOps = 0;
            for (int r = 0; r < rounds; r++)
            {
                long ops0 = rig.Emulator.MapOperations + rig.Emulator.UnmapOperations;
                long loop0 = deterministic ? 0 : await LoopAllocated(rig.Runtime);
                long all0 = GC.GetTotalAllocatedBytes(precise: true);
                var sw = Stopwatch.StartNew();
                long done = await Round(rig, opsPerFrontend);
                double seconds = sw.Elapsed.TotalSeconds;
                long all1 = GC.GetTotalAllocatedBytes(precise: true);
                long loop1 = deterministic ? 0 : await LoopAllocated(rig.Runtime);
                long ops1 = rig.Emulator.MapOperations + rig.Emulator.UnmapOperations;
                rates.Add(done / seconds);
                grantOps = Math.Max(grantOps, (double)(ops1 - ops0) / done);
                loopBytes = Math.Max(loopBytes, (double)(loop1 - loop0) / done);
                processBytes = Math.Max(processBytes, (double)(all1 - all0) / done);
            }
            return new Measurement(BenchStats.Median(rates), loopBytes, processBytes, grantOps);
        }
        finally { mem.Dispose(); }
    }

    /// <summary>One round: every frontend runs <see cref="QueueDepth"/> workers of 4 KiB random reads. Returns the requests done.</summary>
    private static async Task<long> Round(EmulatorRig rig, int opsPerFrontend)
    {
        int perWorker = Math.Max(1, opsPerFrontend / QueueDepth);
        await rig.Execute(() => Task.WhenAll(rig.Frontends.Select((f, i) => Workers(f, perWorker, BlkifOperation.Read, i))));
        return (long)perWorker * QueueDepth * rig.Frontends.Count;
    }

    private static Task Workers(BlkFront front, int perWorker, BlkifOperation op, int seed)
    {
        var workers = new Task[QueueDepth];
        for (int w = 0; w < QueueDepth; w++) workers[w] = Worker(front, perWorker, op, (ulong)(seed * QueueDepth + w + 1));
        return Task.WhenAll(workers);
    }

    private static async Task Worker(BlkFront front, int count, BlkifOperation op, ulong rng)
    {
        var buffer = new byte[4096];
        ulong slots = front.Sectors / 8;
        for (int i = 0; i < count; i++)
        {
            ulong sector = BenchStats.NextSlotSector(ref rng, slots);
            var status = op == BlkifOperation.Write ? await front.WriteAsync(sector, buffer) : await front.ReadAsync(sector, buffer);
            if (status != BlkifStatus.Okay) throw new InvalidOperationException($"emulator bench: {op} of sector {sector} on {front.FrontendPath} answered {status}");
        }
    }

    /// <summary>The bytes the tap's loop thread has allocated so far (read on that thread).</summary>
    private static Task<long> LoopAllocated(TapRuntime runtime)
    {
        // Continuations must not run inline on the loop thread: their allocations would count as the loop's.
        var result = new TaskCompletionSource<long>(TaskCreationOptions.RunContinuationsAsynchronously);
        runtime.Post(() => result.SetResult(GC.GetAllocatedBytesForCurrentThread()));
        return result.Task.WaitAsync(TimeSpan.FromSeconds(30));
    }
}
