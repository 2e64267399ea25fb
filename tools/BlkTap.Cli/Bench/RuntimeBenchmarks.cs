using System.Diagnostics;

namespace BlkTap.Cli.Bench;

/// <summary>Requests per second through the runtime on one core, and bytes allocated per request.</summary>
internal static class RuntimeBenchmarks
{
    public static IEnumerable<BenchResult> Run(bool quick)
    {
        int batches = quick ? 2_000 : 60_000;
        // Baseline: bare ring echo.
        RingHarness.RunBareEcho(batches / 10);
        var sw = Stopwatch.StartNew();
        long bare = RingHarness.RunBareEcho(batches);
        double bareRate = bare / sw.Elapsed.TotalSeconds;

        var nullHook = Hook.Request(static r => { r.Status = BlkifStatus.Okay; return HookResult.Respond; });
        using (var h = new RingHarness(rt => rt.RegisterRequestHook("null", nullHook)))
        {
            var (rate, bytesPer) = Measure(h, batches, BlkifOperation.Read);
            yield return new BenchResult("runtime: null terminator, 1 frontend, qd 32, 4 KiB reads", rate, bareRate, "req/s", "bare ring echo (no runtime)");
            yield return new BenchResult("runtime: bytes allocated per request (steady state)", bytesPer, null, "B/req", "goal 0", HigherIsBetter: false);
        }
        using (var h = new RingHarness(rt =>
        {
            var mem = new BlockDeviceHook(new MemoryBlockDevice(512L << 20));
            rt.RegisterControlHook("mem", mem);
            rt.RegisterRequestHook("mem", mem);
        }))
        {
            var (rate, bytesPer) = Measure(h, batches / 2, BlkifOperation.Write);
            var (rrate, _) = Measure(h, batches / 2, BlkifOperation.Read);
            yield return new BenchResult("runtime: mem terminator, 4 KiB writes (data copied)", rate, bareRate, "req/s", "bare ring echo (no runtime)", Note: $"{bytesPer:F1} B/req allocated");
            yield return new BenchResult("runtime: mem terminator, 4 KiB reads (data copied)", rrate, bareRate, "req/s", "bare ring echo (no runtime)");
        }
    }

    private static (double Rate, double BytesPerRequest) Measure(RingHarness h, int batches, BlkifOperation op)
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
