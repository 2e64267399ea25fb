using System.Diagnostics;

namespace BlkTap.Bench;

/// <summary>Requests per second through the runtime on one core (1 and 4 frontends), and bytes allocated per request.</summary>
internal static class RuntimeBenchmarks
{
    public static IEnumerable<BenchResult> Run(BenchContext ctx)
    {
        int batches = ctx.Quick ? 500 : 60_000;
        ctx.Progress("runtime: bare ring echo baseline");
        // Baseline: bare ring echo.
        RingHarness.RunBareEcho(Math.Max(10, batches / 10));
        var sw = Stopwatch.StartNew();
        long bare = RingHarness.RunBareEcho(batches);
        double bareRate = bare / sw.Elapsed.TotalSeconds;

        var nullHook = Hook.Request(static r => { r.Status = BlkifStatus.Okay; return HookResult.Respond; });
        ctx.Progress("runtime: null terminator, 1 frontend");
        double oneFrontend;
        using (var h = new RingHarness(rt => rt.RegisterRequestHook("null", nullHook)))
        {
            var (rate, bytesPer) = Measure(h, batches, BlkifOperation.Read);
            oneFrontend = rate;
            ctx.NullTerminatorRate = rate;
            yield return new BenchResult("runtime: null terminator, 1 frontend, qd 32, 4 KiB reads", rate, bareRate, "req/s", "bare ring echo (no runtime), goal >= 1M req/s");
            yield return new BenchResult("runtime: bytes allocated per request (steady state)", bytesPer, null, "B/req", "goal 0", HigherIsBetter: false);
        }
        ctx.Progress("runtime: null terminator, 4 frontends");
        using (var h = new RingHarness(rt => rt.RegisterRequestHook("null", nullHook), frontends: 4))
        {
            var (rate, bytesPer) = Measure(h, batches / 4, BlkifOperation.Read);
            yield return new BenchResult("runtime: null terminator, 4 frontends round-robin, qd 32 each", rate, oneFrontend, "req/s", "the same runtime with 1 frontend",
                Note: $"{bytesPer:F1} B/req allocated");
        }
        ctx.Progress("runtime: mem terminator");
        using (var h = new RingHarness(rt =>
        {
            var mem = new BlockDeviceHook(new MemoryBlockDevice(512L << 20));
            rt.RegisterControlHook("mem", mem);
            rt.RegisterRequestHook("mem", mem);
        }))
        {
            var (rate, bytesPer) = Measure(h, batches / 2, BlkifOperation.Write);
            var (rrate, _) = Measure(h, batches / 2, BlkifOperation.Read);
            ctx.MemTerminatorReadRate = rrate;
            yield return new BenchResult("runtime: mem terminator, 4 KiB writes (data copied)", rate, bareRate, "req/s", "bare ring echo (no runtime)", Note: $"{bytesPer:F1} B/req allocated");
            yield return new BenchResult("runtime: mem terminator, 4 KiB reads (data copied)", rrate, bareRate, "req/s", "bare ring echo (no runtime)");
        }
    }

    internal static (double Rate, double BytesPerRequest) Measure(RingHarness h, int batches, BlkifOperation op)
    {
        h.Run(Math.Max(10, batches / 10), op); // warm up: pools, JIT tiering
        long before = GC.GetAllocatedBytesForCurrentThread();
        var sw = Stopwatch.StartNew();
        long n = h.Run(batches, op);
        sw.Stop();
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        return (n / sw.Elapsed.TotalSeconds, (double)allocated / n);
    }
}
