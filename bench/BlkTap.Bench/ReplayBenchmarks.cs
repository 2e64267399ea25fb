using System.Diagnostics;
using System.Text.Json;
using BlkTap.Trace;

namespace BlkTap.Bench;

/// <summary>
/// <c>blktap replay --timing fast</c> of a generated trace (4 KiB random reads and writes, one session)
/// into the <c>mem</c> terminator, against the runtime's own null-terminator rate measured in the same run.
/// </summary>
internal static class ReplayBenchmarks
{
    public const string Name = "replay: native trace, --timing fast, mem terminator";

    public static IEnumerable<BenchResult> Run(BenchContext ctx)
    {
        const string baseline = "the runtime's null-terminator rate, 1 frontend (the ceiling: replay adds the emulator and the trace reader)";
        // The verb exists when the root help lists it (it is merged from another branch).
        var help = new StringWriter();
        ctx.Blktap(["--help"], help, new StringWriter());
        if (!help.ToString().Split('\n').Any(l => l.TrimStart().StartsWith("replay ", StringComparison.Ordinal)))
        {
            yield return new BenchResult(Name, 0, ctx.NullTerminatorRate, "req/s", baseline, Note: "the replay verb is not in this blktap yet: not measured");
            yield break;
        }
        int records = ctx.Quick ? 20_000 : 1_000_000;
        const long diskBytes = 64L << 20;
        var trace = ctx.Scratch("bench.trace");
        ctx.Progress($"replay: writing a {records}-request trace");
        using (var w = TraceWriter.Create(trace, new TraceWriterOptions { Description = "blktap bench" }))
        {
            ulong rng = 777UL, slots = diskBytes / 4096;
            for (int i = 0; i < records; i++)
            {
                rng = rng * 6364136223846793005UL + 1442695040888963407UL;
                var op = (rng >> 63) == 0 ? BlkifOperation.Read : BlkifOperation.Write;
                ulong t = (ulong)i * 1000;
                w.Append(new TraceRecord(t, t + 500, 0, op, (rng >> 20) % slots * 8, 4096, BlkifStatus.Okay));
            }
            w.Complete();
        }
        ctx.Progress("replay: running blktap replay");
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        var sw = Stopwatch.StartNew();
        int code = ctx.Blktap(["replay", trace, "--input-format", "native", "--tap", $"mem:size={diskBytes >> 20}M", "--timing", "fast", "--json"], stdout, stderr);
        sw.Stop();
        File.Delete(trace);
        if (code != 0)
            throw new InvalidOperationException($"blktap replay exited {code}: {stderr.ToString().Trim()}");
        double rate = records / sw.Elapsed.TotalSeconds;
        string note = $"{records} requests; wall clock of the verb (includes reading the trace)";
        try
        {
            using var doc = JsonDocument.Parse(stdout.ToString());
            if (doc.RootElement.TryGetProperty("iops", out var iops) && iops.TryGetDouble(out var v) && v > 0)
            {
                rate = v;
                note = $"{records} requests; the verb's own iops figure";
            }
        }
        catch (JsonException) { }
        yield return new BenchResult(Name, rate, ctx.NullTerminatorRate, "req/s", baseline, Note: note);
    }
}
