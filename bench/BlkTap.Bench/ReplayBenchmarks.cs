using System.Diagnostics;
using System.Text.Json;
using BlkTap.Trace;

namespace BlkTap.Bench;

/// <summary>
/// <c>blktap replay --timing fast</c> of a generated trace (4 KiB random reads and writes, one session)
/// into the <c>mem</c> terminator and into <c>img</c> on an image in /dev/shm (mapped, <c>map=true</c>; with a helper
/// thread, <c>threads=2</c>; with img's defaults), against the runtime's own null-terminator
/// rate measured in the same run, and the bytes the whole verb allocates per request.
/// </summary>
internal static class ReplayBenchmarks
{
    public const string Name = "replay: native trace, --timing fast, mem terminator";
    public const string ImgName = "replay: native trace, --timing fast, img on /dev/shm";
    public const string ImgThreadsName = "replay: native trace, --timing fast, img on /dev/shm, threads=2, no map";
    public const string ImgOneThreadName = "replay: native trace, --timing fast, img on /dev/shm, one thread";

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
        var warmup = ctx.Scratch("warmup.trace");
        ctx.Progress($"replay: writing a {records}-request trace");
        WriteTrace(trace, records, diskBytes);
        WriteTrace(warmup, Math.Min(records, 200_000), diskBytes);
        var image = Path.Combine(ctx.ScratchDirectory, "replay.img");
        using (var f = File.Create(image)) f.SetLength(diskBytes);
        try
        {
            // One untimed replay through each chain first, as the other groups warm up: the JIT's tiering (the verb runs in
            // this process), the mem disk's chunks (its allocator keeps freed ones for reuse) and, for img, the image's
            // pages in /dev/shm. A 1 M-request run is short enough that tier-0 code and first-touch page faults would
            // otherwise be a tenth of it.
            ctx.Progress("replay: warming up (200k requests into mem and into img)");
            string mapped = $"img:path={image},map=true", helped = $"img:path={image},threads=2", plain = $"img:path={image}";
            RunReplay(ctx, warmup, Math.Min(records, 200_000), $"mem:size={diskBytes >> 20}M");
            RunReplay(ctx, warmup, Math.Min(records, 200_000), mapped);
            RunReplay(ctx, warmup, Math.Min(records, 200_000), helped);
            RunReplay(ctx, warmup, Math.Min(records, 200_000), plain);
            // Five runs each, mem and img alternating (drift of the machine hits both alike); each figure is the median
            // (on this 2-vCPU VM one run in five can be a third slower than the others).
            int repetitions = ctx.Quick ? 1 : 5;
            var mems = new List<(double Rate, double BytesPerRequest, string Note)>();
            var imgs = new List<(double Rate, double BytesPerRequest, string Note)>();
            var helps = new List<(double Rate, double BytesPerRequest, string Note)>();
            var ones = new List<(double Rate, double BytesPerRequest, string Note)>();
            for (int r = 0; r < repetitions; r++)
            {
                ctx.Progress($"replay: run {r + 1} of {repetitions}");
                mems.Add(RunReplay(ctx, trace, records, $"mem:size={diskBytes >> 20}M"));
                imgs.Add(RunReplay(ctx, trace, records, mapped));
                helps.Add(RunReplay(ctx, trace, records, helped));
                ones.Add(RunReplay(ctx, trace, records, plain));
            }
            string Spread(List<(double Rate, double BytesPerRequest, string Note)> runs) =>
                runs.Count == 1 ? "" : $"; median of {runs.Count} runs ({string.Join(", ", runs.Select(x => $"{x.Rate / 1000:F0}k"))})";
            var mem = mems.OrderBy(x => x.Rate).ElementAt(mems.Count / 2);
            var img = imgs.OrderBy(x => x.Rate).ElementAt(imgs.Count / 2);
            var helper = helps.OrderBy(x => x.Rate).ElementAt(helps.Count / 2);
            var one = ones.OrderBy(x => x.Rate).ElementAt(ones.Count / 2);
            yield return new BenchResult(Name, mem.Rate, ctx.NullTerminatorRate, "req/s", baseline + "; goal >= 1M req/s", Note: mem.Note + Spread(mems));
            yield return new BenchResult(ImgName, img.Rate, ctx.NullTerminatorRate, "req/s", baseline + "; goal >= 500k req/s",
                Note: img.Note + Spread(imgs) + $"; a {diskBytes >> 20} MiB sparse image in {ctx.ScratchDirectory}; img's map=true (pages that "
                    + "hold data are read and written by copying through a shared mapping of the file; a hole, until its first write, with a system call)");
            yield return new BenchResult(ImgThreadsName, helper.Rate, ctx.NullTerminatorRate, "req/s", baseline,
                Note: helper.Note + Spread(helps) + "; img's threads=2 without map: a helper thread on the second core takes part in each pass's preads and pwrites");
            yield return new BenchResult(ImgOneThreadName, one.Rate, ctx.NullTerminatorRate, "req/s", baseline,
                Note: one.Note + Spread(ones) + "; img's defaults (threads=1, no map): every pread and pwrite on the loop thread");
            yield return new BenchResult("replay: bytes allocated per request (mem, the whole verb)", mems.Max(x => x.BytesPerRequest), null, "B/req",
                "goal 0 per request (what is left: the trace reader, the mem disk's storage, setup); the most of the runs", HigherIsBetter: false);
        }
        finally
        {
            File.Delete(trace);
            File.Delete(warmup);
            File.Delete(image);
        }
    }

    /// <summary>A native trace of <paramref name="records"/> 4 KiB random reads and writes (half each) over the disk, one session.</summary>
    private static void WriteTrace(string path, int records, long diskBytes)
    {
        using var w = TraceWriter.Create(path, new TraceWriterOptions { Description = "blktap bench" });
        ulong rng = 777UL, slots = (ulong)diskBytes / 4096;
        for (int i = 0; i < records; i++)
        {
            rng = rng * 6364136223846793005UL + 1442695040888963407UL;
            var op = (rng >> 63) == 0 ? BlkifOperation.Read : BlkifOperation.Write;
            ulong t = (ulong)i * 1000;
            w.Append(new TraceRecord(t, t + 500, 0, op, (rng >> 20) % slots * 8, 4096, BlkifStatus.Okay));
        }
        w.Complete();
    }

    /// <summary>Runs <c>blktap replay</c> in this process; the rate is the verb's own iops figure (the wall clock of the verb when it has none).</summary>
    private static (double Rate, double BytesPerRequest, string Note) RunReplay(BenchContext ctx, string trace, int records, string tap)
    {
        ctx.Progress($"replay: running blktap replay --tap {tap}");
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        // What the groups before left behind is collected now, not during the timed run.
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: true, compacting: true);
        GC.WaitForPendingFinalizers();
        long allocated = GC.GetTotalAllocatedBytes(precise: true);
        var sw = Stopwatch.StartNew();
        int code = ctx.Blktap(["replay", trace, "--input-format", "native", "--tap", tap, "--timing", "fast", "--json"], stdout, stderr);
        sw.Stop();
        double bytesPer = (GC.GetTotalAllocatedBytes(precise: true) - allocated) / (double)records;
        if (code != 0)
            throw new InvalidOperationException($"blktap replay --tap {tap} exited {code}: {stderr.ToString().Trim()}");
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
        return (rate, bytesPer, note + $"; {bytesPer:F0} B/req allocated by the whole verb (trace reader, disk, setup included)");
    }
}
