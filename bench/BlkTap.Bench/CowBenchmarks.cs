using BlkTap.Examples;

namespace BlkTap.Bench;

/// <summary>
/// The cow tap over img against qemu-nbd serving qcow2 overlays of the same raw base, like for like: every server
/// starts each repetition on a fresh, empty overlay (the first write to a cluster is the costly one), the order of the
/// servers alternates between repetitions, each figure is the median of its repetitions, and our figure is compared
/// with the best qcow2 variant: qemu's default 64 KiB clusters, 4 KiB clusters (whose first write copies no more than
/// ours) and <c>extended_l2=on</c> (subclusters) where qemu-img accepts it.
/// </summary>
internal static class CowBenchmarks
{
    private const string QemuNbdOptions = "--cache=writeback --aio=threads -t -e 8";

    /// <summary>A qcow2 overlay variant: its label and the <c>qemu-img create -o</c> options that make it.</summary>
    private sealed record Variant(string Label, string CreateOptions);

    private static readonly Variant[] Variants =
    [
        new("qcow2 64 KiB clusters", "cluster_size=65536"),
        new("qcow2 4 KiB clusters", "cluster_size=4096"),
        new("qcow2 64 KiB clusters, extended_l2", "cluster_size=65536,extended_l2=on"),
    ];

    /// <summary>The line names, writes first (they fill the overlay), then reads of what was written and the base.</summary>
    public static string LineName(FioJob job) => $"cow vs best qcow2 overlay: {job.Label}";

    public static IEnumerable<BenchResult> Run(BenchContext ctx)
    {
        var jobs = new[] { FioJob.Standard[1], FioJob.Standard[0] };
        string? skip = null;
        if (!ExampleTaps.CreateRegistry().Factories.Any(f => f.Name == "cow")) skip = "the cow tap is not built into this blktap: not measured";
        var fio = PeerPrograms.Find("fio");
        var qemuImg = PeerPrograms.Find("qemu-img");
        var qemuNbd = PeerPrograms.Find("qemu-nbd");
        if (skip == null && fio == null) skip = "fio not installed (apt-get install fio): not measured";
        if (skip != null) return jobs.Select(j => new BenchResult(LineName(j), 0, null, j.Unit, "qemu-nbd qcow2 overlay", Note: skip)).ToList();

        int seconds = ctx.Quick ? 1 : 5;
        int reps = ctx.Quick ? 1 : 3;
        long bytes = ctx.Quick ? 32L << 20 : 1L << 30;
        ctx.Progress("cow: creating the base image");
        var baseImage = ctx.CreateImage("cow-base.raw", bytes);
        try
        {
            // Which variants this qemu-img makes (extended_l2 needs qemu 5.2 and a cluster size it accepts).
            var contenders = new List<Variant>();
            var refused = new List<string>();
            if (qemuImg != null && qemuNbd != null)
            {
                foreach (var v in Variants)
                {
                    var probe = ctx.Scratch("probe.qcow2");
                    var error = Create(qemuImg, baseImage, probe, v);
                    if (File.Exists(probe)) File.Delete(probe);
                    if (error == null) contenders.Add(v);
                    else refused.Add($"{v.Label} refused by qemu-img ({error})");
                }
            }
            var servers = new List<string> { "ours" };
            servers.AddRange(contenders.Select(v => v.Label));
            // runs[server][job] = figures of each repetition
            var runs = servers.ToDictionary(s => s, _ => jobs.Select(_ => new List<double>()).ToArray());
            var failures = new List<string>();
            for (int rep = 0; rep < reps; rep++)
            {
                foreach (var server in rep % 2 == 0 ? servers : Enumerable.Reverse(servers))
                {
                    ctx.Progress($"cow: {server} ({rep + 1} of {reps})");
                    var error = RunOne(ctx, server, contenders, qemuImg, qemuNbd, fio!, baseImage, jobs, seconds, runs[server]);
                    if (error != null) failures.Add($"{server}: {error}");
                }
            }
            var results = new List<BenchResult>();
            var where = $"{bytes >> 20} MiB raw base in {ctx.ScratchDirectory}, a fresh overlay per server and repetition, fio {seconds} s per job, median of {reps} in alternating order";
            for (int j = 0; j < jobs.Length; j++)
            {
                double our = runs["ours"][j].Count > 0 ? BenchStats.Median(runs["ours"][j]) : 0;
                var medians = contenders.Where(v => runs[v.Label][j].Count == reps)
                    .Select(v => (v.Label, Median: BenchStats.Median(runs[v.Label][j]))).ToList();
                var best = medians.Count == 0 ? default : medians.MaxBy(m => m.Median);
                string perVariant = string.Join("; ", medians.Select(m => $"{m.Label} {m.Median:F0}"));
                string why = qemuImg == null || qemuNbd == null ? "qemu-img/qemu-nbd not installed (apt-get install qemu-utils): theirs not measured"
                    : string.Join("; ", refused.Concat(failures));
                results.Add(new BenchResult(LineName(jobs[j]), our, medians.Count == 0 ? null : best.Median, jobs[j].Unit,
                    $"the best of qemu-nbd -f qcow2 {QemuNbdOptions} over qemu-img create -f qcow2 -b base.raw -F raw -o (64 KiB, 4 KiB, 64 KiB + extended_l2); goal >= 2.0",
                    Note: $"{where}; best: {(medians.Count == 0 ? "none" : best.Label)}; medians: {perVariant}{(why.Length > 0 ? "; " + why : "")}"));
            }
            return results;
        }
        finally
        {
            File.Delete(baseImage);
        }
    }

    /// <summary>One repetition of one server: a fresh overlay, the server, every job in order. Null or what failed.</summary>
    private static string? RunOne(BenchContext ctx, string server, List<Variant> contenders, string? qemuImg, string? qemuNbd, string fio,
        string baseImage, FioJob[] jobs, int seconds, List<double>[] figures)
    {
        var overlay = ctx.Scratch(server == "ours" ? "ours.cow" : "overlay.qcow2");
        if (File.Exists(overlay)) File.Delete(overlay);
        NbdServerProcess? process = null;
        try
        {
            if (server == "ours")
                process = NbdBenchmarks.StartOurs(ctx, "ours-cow", [$"cow:overlay={overlay}", $"img:path={baseImage}"]);
            else
            {
                var variant = contenders.Single(v => v.Label == server);
                var error = Create(qemuImg!, baseImage, overlay, variant);
                if (error != null) return $"qemu-img create failed: {error}";
                var sock = ctx.Scratch("qcow.sock");
                process = NbdServerProcess.Start("qemu-nbd", qemuNbd!, ["-k", sock, "-f", "qcow2", .. QemuNbdOptions.Split(' '), overlay], sock);
            }
            for (int j = 0; j < jobs.Length; j++) figures[j].Add(jobs[j].Run(fio, process.Uri, seconds, ctx.ScratchDirectory));
            return null;
        }
        catch (InvalidOperationException ex) { return ex.Message; }
        finally
        {
            process?.Dispose();
            if (File.Exists(overlay)) File.Delete(overlay);
        }
    }

    private static string? Create(string qemuImg, string baseImage, string overlay, Variant v) =>
        NbdBenchmarks.Run(qemuImg, ["create", "-q", "-f", "qcow2", "-b", baseImage, "-F", "raw", "-o", v.CreateOptions, overlay]);
}
