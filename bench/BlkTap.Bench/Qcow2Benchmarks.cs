namespace BlkTap.Bench;

/// <summary>
/// The qcow2 tap through <c>blktap nbd serve</c> against <c>qemu-nbd</c> serving the same qcow2 image (64 KiB clusters),
/// one server at a time (each takes the image's write lock): 4 KiB random writes to fresh clusters (a new empty image
/// per run, large enough that almost every write allocates), 4 KiB random writes to allocated clusters, 4 KiB random
/// reads and 1 MiB sequential reads of a fully allocated image. Three repetitions in alternating order, medians.
/// </summary>
/// <remarks>Threading: runs on the caller's thread.</remarks>
internal static class Qcow2Benchmarks
{
    /// <summary>The qemu-nbd options used (stated in every line).</summary>
    public const string QemuOptions = "-f qcow2 --cache=writeback --aio=threads -t -e 8";

    private sealed record Line(FioJob Job, bool Fresh);

    private static readonly Line[] Lines =
    [
        new(new FioJob("4 KiB randwrite to fresh clusters, iodepth 32", "randwrite", "4k", 32, false), Fresh: true),
        new(new FioJob("4 KiB randwrite to allocated clusters, iodepth 32", "randwrite", "4k", 32, false), Fresh: false),
        new(FioJob.Standard[0], Fresh: false),
        new(FioJob.Standard[2], Fresh: false),
    ];

    private static string Name(Line l) => $"qcow2 vs qemu-nbd: {l.Job.Label}";

    public static IEnumerable<BenchResult> Run(BenchContext ctx)
    {
        var fio = PeerPrograms.Find("fio");
        var qemuImg = PeerPrograms.Find("qemu-img");
        var qemuNbd = PeerPrograms.Find("qemu-nbd");
        string? skip = fio == null ? "fio not installed (apt-get install fio): not measured"
            : qemuImg == null ? "qemu-img not installed (apt-get install qemu-utils): not measured" : null;
        if (skip != null) return Lines.Select(l => new BenchResult(Name(l), 0, null, l.Job.Unit, "qemu-nbd", Note: skip)).ToList();

        int seconds = ctx.Quick ? 1 : 4;
        int reps = ctx.Quick ? 1 : 3;
        long bytes = ctx.Quick ? 32L << 20 : 1L << 30;
        long freshBytes = ctx.Quick ? 2L << 30 : 64L << 30;
        var results = new List<BenchResult>();
        ctx.Progress("qcow2: creating the images");
        var raw = ctx.CreateImage("q2-src.raw", bytes);
        string full = ctx.Scratch("q2-full.qcow2"), fresh = ctx.Scratch("q2-fresh.qcow2");
        try
        {
            // A fully allocated image: every cluster a data cluster.
            if (NbdBenchmarks.Run(qemuImg!, ["convert", "-q", "-f", "raw", "-O", "qcow2", "-o", "cluster_size=65536", raw, full]) is { } e)
                return Lines.Select(l => new BenchResult(Name(l), 0, null, l.Job.Unit, "qemu-nbd", Note: $"qemu-img convert failed: {e}")).ToList();
            File.Delete(raw);
            foreach (var line in Lines)
            {
                var ours = new List<double>();
                var theirs = new List<double>();
                string? note = qemuNbd == null ? "qemu-nbd not installed (apt-get install qemu-utils): theirs not measured" : null;
                for (int rep = 0; rep < reps; rep++)
                {
                    foreach (bool oursFirst in rep % 2 == 0 ? new[] { true, false } : [false, true])
                    {
                        if (!oursFirst && qemuNbd == null) continue;
                        string image = full;
                        if (line.Fresh)
                        {
                            image = fresh;
                            if (File.Exists(fresh)) File.Delete(fresh);
                            if (NbdBenchmarks.Run(qemuImg!, ["create", "-q", "-f", "qcow2", "-o", "cluster_size=65536", fresh, freshBytes.ToString()]) is { } ce)
                                throw new InvalidOperationException($"qemu-img create failed: {ce}");
                        }
                        ctx.Progress($"qcow2: {line.Job.Label}: {(oursFirst ? "ours" : "qemu-nbd")} ({rep + 1} of {reps})");
                        if (oursFirst)
                        {
                            using var server = NbdBenchmarks.StartOurs(ctx, "ours-qcow2", [$"qcow2:path={image}"]);
                            ours.Add(line.Job.Run(fio!, server.Uri, seconds, ctx.ScratchDirectory));
                        }
                        else
                        {
                            var (server, why) = NbdBenchmarks.TryStart(() => NbdServerProcess.Start("qemu-nbd", qemuNbd!, ["-k", ctx.Scratch("q2-qemu.sock"), .. QemuOptions.Split(' '), image], ctx.Scratch("q2-qemu.sock")), "qemu-nbd");
                            if (server == null) { note = why; continue; }
                            using (server) theirs.Add(line.Job.Run(fio!, server.Uri, seconds, ctx.ScratchDirectory));
                        }
                    }
                }
                double our = BenchStats.Median(ours);
                double? their = theirs.Count > 0 ? BenchStats.Median(theirs) : null;
                string spread = theirs.Count == ours.Count && reps > 1
                    ? $"; per-repetition ratio {string.Join(", ", ours.Zip(theirs, (a, b) => (a / b).ToString("F2", System.Globalization.CultureInfo.InvariantCulture)))}" : "";
                string where = line.Fresh
                    ? $"a new empty {freshBytes >> 30} GiB image (64 KiB clusters) per run in {ctx.ScratchDirectory}"
                    : $"a fully allocated {bytes >> 20} MiB image (64 KiB clusters) in {ctx.ScratchDirectory}";
                results.Add(new BenchResult(Name(line), our, their, line.Job.Unit,
                    $"qemu-nbd -k S {QemuOptions} IMAGE; goal >= {(line.Fresh ? "2.0" : "1.0")}",
                    Note: note ?? $"{where}, fio {seconds} s per job and server, median of {reps} repetition(s) in alternating order{spread}"));
            }
        }
        finally
        {
            foreach (var f in new[] { raw, full, fresh }) if (File.Exists(f)) File.Delete(f);
        }
        return results;
    }
}
