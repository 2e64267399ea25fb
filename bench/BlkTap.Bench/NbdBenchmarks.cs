using BlkTap.Examples;

namespace BlkTap.Bench;

/// <summary>
/// The same fio jobs (ioengine=nbd over a Unix socket) against <c>blktap nbd serve --tap img</c>,
/// <c>nbdkit file</c> and <c>qemu-nbd</c>, all serving one raw image in /dev/shm, job by job back
/// to back; plus the cow tap against a qemu qcow2 overlay over the same base.
/// </summary>
internal static class NbdBenchmarks
{
    /// <summary>The qemu-nbd options used (stated in every qemu line).</summary>
    public const string QemuOptions = "-f raw --cache=writeback --aio=threads -t -e 8";

    public static IEnumerable<BenchResult> Run(BenchContext ctx)
    {
        int seconds = ctx.Quick ? 1 : 4;
        int reps = ctx.Quick ? 1 : 3;
        long bytes = ctx.Quick ? 32L << 20 : 1L << 30;
        var fio = PeerPrograms.Find("fio");
        var results = new List<BenchResult>();
        if (fio == null)
        {
            foreach (var job in FioJob.Standard)
            {
                results.Add(new BenchResult($"nbd export vs nbdkit: {job.Label}", 0, null, job.Unit, "nbdkit file", Note: "fio not installed (apt-get install fio): not measured"));
                results.Add(new BenchResult($"nbd export vs qemu-nbd: {job.Label}", 0, null, job.Unit, "qemu-nbd", Note: "fio not installed (apt-get install fio): not measured"));
            }
            return results;
        }
        ctx.Progress("nbd: creating the image");
        var image = ctx.CreateImage("nbd.raw", bytes);
        var where = $"{bytes >> 20} MiB raw image in {ctx.ScratchDirectory}, fio {seconds} s per job and server, median of {reps} repetition(s) in alternating order";
        var servers = new List<NbdServerProcess>();
        try
        {
            ctx.Progress("nbd: starting blktap nbd serve, nbdkit, qemu-nbd");
            var ours = StartOurs(ctx, "ours", [$"img:path={image}"]);
            servers.Add(ours);
            var (nbdkit, nbdkitNote) = TryStart(() => PeerPrograms.Find("nbdkit") is { } p
                ? NbdServerProcess.Start("nbdkit", p, ["-U", ctx.Scratch("nbdkit.sock"), "-f", "file", image], ctx.Scratch("nbdkit.sock"))
                : null, "nbdkit");
            if (nbdkit != null) servers.Add(nbdkit);
            var (qemu, qemuNote) = TryStart(() => PeerPrograms.Find("qemu-nbd") is { } p
                ? NbdServerProcess.Start("qemu-nbd", p, ["-k", ctx.Scratch("qemu.sock"), .. QemuOptions.Split(' '), image], ctx.Scratch("qemu.sock"))
                : null, "qemu-nbd");
            if (qemu != null) servers.Add(qemu);

            foreach (var job in FioJob.Standard)
            {
                // Each server runs the job `reps` times; the order flips every repetition (ours first, then last), so that
                // drift of the machine during a job hits every server alike. Each figure is the median of its runs.
                var runs = servers.ToDictionary(s => s, _ => new List<double>());
                for (int rep = 0; rep < reps; rep++)
                {
                    foreach (var server in rep % 2 == 0 ? servers : Enumerable.Reverse(servers))
                    {
                        ctx.Progress($"nbd: {job.Label}: {server.Label} ({rep + 1} of {reps})");
                        runs[server].Add(job.Run(fio, server.Uri, seconds, ctx.ScratchDirectory));
                    }
                }
                double our = BenchStats.Median(runs[ours]);
                double? kit = nbdkit != null ? BenchStats.Median(runs[nbdkit]) : null;
                double? qem = qemu != null ? BenchStats.Median(runs[qemu]) : null;
                string Spread(NbdServerProcess? them) => them == null || reps < 2 ? ""
                    : $"; per-repetition ratio {string.Join(", ", runs[ours].Zip(runs[them], (a, b) => (a / b).ToString("F2", System.Globalization.CultureInfo.InvariantCulture)))}";
                results.Add(new BenchResult($"nbd export vs nbdkit: {job.Label}", our, kit, job.Unit, "nbdkit -U S file IMAGE; goal >= 1.0", Note: nbdkitNote ?? where + Spread(nbdkit)));
                results.Add(new BenchResult($"nbd export vs qemu-nbd: {job.Label}", our, qem, job.Unit, $"qemu-nbd -k S {QemuOptions} IMAGE", Note: qemuNote ?? where + Spread(qemu)));
            }
        }
        finally
        {
            foreach (var s in servers) s.Dispose();
            File.Delete(image);
        }
        return results;
    }

    /// <summary>Random 4 KiB writes then reads through <c>cow</c> over <c>img</c> against qemu-nbd serving a qcow2 overlay of the same base.</summary>
    public static IEnumerable<BenchResult> RunCow(BenchContext ctx)
    {
        var jobs = new[] { FioJob.Standard[1], FioJob.Standard[0] }; // writes first (they fill the overlay), then reads
        var names = jobs.Select(j => $"cow vs qemu qcow2 overlay: {j.Label}").ToArray();
        string? skip = null;
        if (!ExampleTaps.CreateRegistry().Factories.Any(f => f.Name == "cow")) skip = "the cow tap is not built into this blktap yet: not measured";
        var fio = PeerPrograms.Find("fio");
        var qemuImg = PeerPrograms.Find("qemu-img");
        var qemuNbd = PeerPrograms.Find("qemu-nbd");
        if (skip == null && fio == null) skip = "fio not installed: not measured";
        if (skip != null) return names.Select((n, i) => new BenchResult(n, 0, null, jobs[i].Unit, "qemu-nbd qcow2 overlay", Note: skip)).ToList();

        int seconds = ctx.Quick ? 1 : 10;
        long bytes = ctx.Quick ? 32L << 20 : 1L << 30;
        ctx.Progress("cow: creating the base image");
        var baseImage = ctx.CreateImage("cow-base.raw", bytes);
        var ourOverlay = ctx.Scratch("ours.cow");
        var qcow = ctx.Scratch("ov.qcow2");
        var results = new List<BenchResult>();
        NbdServerProcess? ours = null, theirs = null;
        string? note = null;
        try
        {
            ours = StartOurs(ctx, "ours-cow", [$"cow:overlay={ourOverlay}", $"img:path={baseImage}"]);
            if (qemuImg == null || qemuNbd == null) note = "qemu-img/qemu-nbd not installed (apt-get install qemu-utils): theirs not measured";
            else
            {
                var r = Run(qemuImg, ["create", "-q", "-f", "qcow2", "-b", baseImage, "-F", "raw", qcow]);
                if (r != null) note = $"qemu-img create failed: {r}";
                else (theirs, note) = TryStart(() => NbdServerProcess.Start("qemu-nbd", qemuNbd, ["-k", ctx.Scratch("qcow.sock"), "-f", "qcow2", "--cache=writeback", "--aio=threads", "-t", "-e", "8", qcow], ctx.Scratch("qcow.sock")), "qemu-nbd");
            }
            for (int i = 0; i < jobs.Length; i++)
            {
                ctx.Progress($"cow: {jobs[i].Label}");
                double our = jobs[i].Run(fio!, ours.Uri, seconds, ctx.ScratchDirectory);
                double? their = theirs != null ? jobs[i].Run(fio!, theirs.Uri, seconds, ctx.ScratchDirectory) : null;
                results.Add(new BenchResult(names[i], our, their, jobs[i].Unit,
                    "qemu-nbd -f qcow2 --cache=writeback over qemu-img create -f qcow2 -b base.raw -F raw; goal >= 1.0",
                    Note: note ?? $"{bytes >> 20} MiB base in {ctx.ScratchDirectory}, fio {seconds} s per job"));
            }
        }
        finally
        {
            ours?.Dispose();
            theirs?.Dispose();
            foreach (var f in new[] { baseImage, ourOverlay, qcow }) if (File.Exists(f)) File.Delete(f);
        }
        return results;
    }

    internal static NbdServerProcess StartOurs(BenchContext ctx, string name, string[] taps)
    {
        var sock = ctx.Scratch(name + ".sock");
        var (program, prefix) = PeerPrograms.Blktap();
        var args = new List<string>(prefix) { "nbd", "serve", "--unix", sock };
        foreach (var t in taps) { args.Add("--tap"); args.Add(t); }
        return NbdServerProcess.Start("blktap nbd serve", program, args, sock, readyLine: "blktap: serving");
    }

    internal static (NbdServerProcess? Server, string? Note) TryStart(Func<NbdServerProcess?> start, string what)
    {
        try
        {
            var s = start();
            return s == null ? (null, $"{what} not installed: theirs not measured") : (s, null);
        }
        catch (InvalidOperationException ex) { return (null, $"{what} did not start ({ex.Message}): theirs not measured"); }
    }

    internal static string? Run(string program, string[] args)
    {
        var psi = new System.Diagnostics.ProcessStartInfo(program) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = System.Diagnostics.Process.Start(psi);
        if (p == null) return "cannot start";
        var err = p.StandardError.ReadToEnd();
        p.WaitForExit();
        return p.ExitCode == 0 ? null : err.Trim();
    }
}
