namespace BlkTap.Bench;

/// <summary>
/// Persistent grants and multi-queue in the emulated system (the rigs of <see cref="EmulatorBenchmarks"/>: guests'
/// <see cref="Emulator.BlkFront"/>, the xenbus backend, the mem terminator, 4 KiB random reads at queue depth 32 per
/// guest, threaded): grant map plus unmap operations per request with and without <c>feature-persistent</c>, and the
/// request rate of 4 guests with 4 rings each against the same 4 guests with one ring each. Baselines are measured in
/// the same run, in alternating order.
/// </summary>
/// <remarks>Threading: the bench command's thread drives each rig; nothing here is shared between rigs.</remarks>
internal static class GrantBenchmarks
{
    public static IEnumerable<BenchResult> Run(BenchContext ctx)
    {
        int ops = ctx.Quick ? 2_000 : 200_000;
        int reps = ctx.Quick ? 1 : 3;

        ctx.Progress("grants: map and unmap operations per request, with and without persistent grants");
        var without = Measure(1, ops, queues: 1, persistent: false);
        var with = Measure(1, ops, queues: 1, persistent: true);
        yield return new BenchResult("grants: map+unmap operations per request, no persistent grants (1 guest, 4 KiB reads)",
            without.GrantOperationsPerRequest, null, "ops/req", "one map and one unmap per request (blkif without feature-persistent)", HigherIsBetter: false,
            Note: $"the emulator's grant counters over {ops:N0} requests");
        yield return new BenchResult("grants: map+unmap operations per request, persistent grants, steady state (1 guest, 4 KiB reads)",
            with.GrantOperationsPerRequest, without.GrantOperationsPerRequest, "ops/req", "the same workload without persistent grants, same run",
            HigherIsBetter: false, Note: "goal 0: each grant mapped once, when first used, and kept until disconnect; the ratio is empty when ours is 0");

        var one = new List<double>();
        var four = new List<double>();
        for (int r = 0; r < reps; r++)
        {
            // Alternating order, so drift on a busy machine falls on both.
            ctx.Progress($"grants: 4 guests, 1 ring each (repetition {r + 1} of {reps})");
            one.Add(Measure(4, ops / 4, queues: 1, persistent: true).Rate);
            ctx.Progress($"grants: 4 guests, 4 rings each (repetition {r + 1} of {reps})");
            four.Add(Measure(4, ops / 4, queues: 4, persistent: true).Rate);
        }
        double oneRate = BenchStats.Median(one), fourRate = BenchStats.Median(four);
        yield return new BenchResult("emulator (threaded): 4 guests, 1 ring each, qd 32 each, 4 KiB reads", oneRate, null, "req/s",
            "the reference for the 4-ring line", Note: $"median of {reps} rig(s) of {ops:N0} requests; persistent grants on");
        yield return new BenchResult("emulator (threaded): 4 guests, 4 rings each (multi-queue), qd 32 each, 4 KiB reads", fourRate, oneRate, "req/s",
            "the same 4 guests with 1 ring each, same run", Note: $"median of {reps} rig(s) of {ops:N0} requests, alternating with the 1-ring rigs; the tap serves every ring on one loop thread");
    }

    private static EmulatorBenchmarks.Measurement Measure(int guests, int opsPerGuest, int queues, bool persistent) =>
        EmulatorBenchmarks.MeasureAsync(guests, deterministic: false, opsPerGuest, rounds: 1, o =>
        {
            o.Backend = new XenbusBackendOptions { FeaturePersistent = persistent, MaxQueues = queues };
            o.ConfigureFrontend = (_, f) => { f.PersistentGrants = persistent; f.MaxQueues = queues; };
        }).GetAwaiter().GetResult();
}
