using BlkTap.Examples;

namespace BlkTap.Bench;

/// <summary>
/// The same fio jobs (ioengine=nbd over a Unix socket) against <c>blktap nbd serve --tap img</c>,
/// <c>nbdkit file</c> and <c>qemu-nbd</c>, all serving one raw image in /dev/shm, job by job back
/// to back, with each server's CPU time per request over the same jobs. A minimal single-threaded C server
/// (<c>Probes/nbd-minimal-server.c</c>, compiled with gcc in the run) serves the same jobs as a reference for CPU per
/// request: the kernel's work every server pays (receive, pwrite or pread, send) plus the least a server adds.
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
                results.Add(new BenchResult($"nbd CPU per request vs nbdkit: {job.Label}", 0, null, "us CPU/req", "nbdkit", HigherIsBetter: false, Note: "fio not installed (apt-get install fio): not measured"));
                results.Add(new BenchResult($"nbd CPU per request vs qemu-nbd: {job.Label}", 0, null, "us CPU/req", "qemu-nbd", HigherIsBetter: false, Note: "fio not installed (apt-get install fio): not measured"));
                results.Add(new BenchResult($"nbd CPU per request vs a minimal C server: {job.Label}", 0, null, "us CPU/req", MinimalBaseline, HigherIsBetter: false, Note: "fio not installed (apt-get install fio): not measured"));
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
            var (minimal, minimalNote) = TryStart(() => StartMinimal(ctx, image), "the minimal C server");
            if (minimal != null) servers.Add(minimal);

            foreach (var job in FioJob.Standard)
            {
                // Each server runs the job `reps` times; the order flips every repetition (ours first, then last), so that
                // drift of the machine during a job hits every server alike. Each figure is the median of its runs. The
                // server's CPU time over the same job, divided by the requests fio completed, is its CPU per request.
                var runs = servers.ToDictionary(s => s, _ => new List<double>());
                var cpu = servers.ToDictionary(s => s, _ => new List<double>());
                for (int rep = 0; rep < reps; rep++)
                {
                    foreach (var server in rep % 2 == 0 ? servers : Enumerable.Reverse(servers))
                    {
                        ctx.Progress($"nbd: {job.Label}: {server.Label} ({rep + 1} of {reps})");
                        var before = server.CpuTime;
                        var outcome = job.Measure(fio, server.Uri, seconds, ctx.ScratchDirectory);
                        runs[server].Add(outcome.Figure);
                        cpu[server].Add(CpuMicrosPerRequest(server.CpuTime - before, outcome.Requests));
                    }
                }
                double our = BenchStats.Median(runs[ours]);
                double? kit = nbdkit != null ? BenchStats.Median(runs[nbdkit]) : null;
                double? qem = qemu != null ? BenchStats.Median(runs[qemu]) : null;
                string Spread(NbdServerProcess? them) => them == null || reps < 2 ? ""
                    : $"; per-repetition ratio {string.Join(", ", runs[ours].Zip(runs[them], (a, b) => (a / b).ToString("F2", System.Globalization.CultureInfo.InvariantCulture)))}";
                results.Add(new BenchResult($"nbd export vs nbdkit: {job.Label}", our, kit, job.Unit, "nbdkit -U S file IMAGE; goal >= 1.0", Note: nbdkitNote ?? where + Spread(nbdkit)));
                results.Add(new BenchResult($"nbd export vs qemu-nbd: {job.Label}", our, qem, job.Unit, $"qemu-nbd -k S {QemuOptions} IMAGE", Note: qemuNote ?? where + Spread(qemu)));
                double ourCpu = BenchStats.Median(cpu[ours]);
                double? kitCpu = nbdkit != null ? BenchStats.Median(cpu[nbdkit]) : null;
                double? minimalCpu = minimal != null ? BenchStats.Median(cpu[minimal]) : null;
                results.Add(new BenchResult($"nbd CPU per request vs nbdkit: {job.Label}", ourCpu, kitCpu,
                    "us CPU/req", "nbdkit's CPU time per request over the same fio job (/proc/PID/stat utime+stime); goal >= 1.43 (at most 0.7x its CPU), floor 1.25",
                    HigherIsBetter: false, Note: nbdkitNote ?? where + KernelShare(minimalCpu, kitCpu)));
                results.Add(new BenchResult($"nbd CPU per request vs qemu-nbd: {job.Label}", ourCpu, qemu != null ? BenchStats.Median(cpu[qemu]) : null,
                    "us CPU/req", "qemu-nbd's CPU time per request over the same fio job", HigherIsBetter: false, Note: qemuNote ?? where));
                results.Add(new BenchResult($"nbd CPU per request vs a minimal C server: {job.Label}", ourCpu, minimalCpu,
                    "us CPU/req", MinimalBaseline, HigherIsBetter: false,
                    Note: minimalNote ?? $"{where}; its rate {(minimal != null ? BenchStats.Median(runs[minimal]) : 0):F0} {job.Unit}"));
            }
        }
        finally
        {
            foreach (var s in servers) s.Dispose();
            File.Delete(image);
        }
        return results;
    }

    /// <summary>
    /// The clause the nbdkit CPU line's note ends with when both were measured: the minimal C server's CPU per request as
    /// a share of nbdkit's in the same run. On 4 KiB requests that server's cost is little more than the kernel's
    /// (receive, page cache, reply), so a reader of a line that misses its 0.8 floor sees whether a server with no
    /// user-space work to speak of would have met it in that run. Empty when either figure is missing.
    /// </summary>
    internal static string KernelShare(double? minimalCpu, double? nbdkitCpu) =>
        minimalCpu is > 0 && nbdkitCpu is > 0
            ? string.Create(System.Globalization.CultureInfo.InvariantCulture,
                $"; the minimal C server used {minimalCpu.Value / nbdkitCpu.Value:F2} of nbdkit's CPU per request in this run")
            : "";

    /// <summary>What the minimal C server's lines compare against (stated in each).</summary>
    public const string MinimalBaseline =
        "a single-threaded C server doing the least per request (epoll_wait, read until drained, pwrite/pread, one write of the batch's replies; bench/BlkTap.Bench/Probes/nbd-minimal-server.c, gcc -O2): the kernel's share of any server's CPU; no goal";

    /// <summary>
    /// Compiles the reference server (embedded C source) with gcc into the scratch directory and starts it on
    /// <paramref name="image"/>; null when gcc is not installed. Throws <see cref="InvalidOperationException"/> when
    /// it does not compile or start.
    /// </summary>
    internal static NbdServerProcess? StartMinimal(BenchContext ctx, string image)
    {
        var gcc = PeerPrograms.Find("gcc");
        if (gcc == null) return null;
        var source = ctx.Scratch("nbd-minimal-server.c");
        using (var resource = typeof(NbdBenchmarks).Assembly.GetManifestResourceStream("nbd-minimal-server.c")
            ?? throw new InvalidOperationException("the bench was built without its nbd-minimal-server.c resource"))
        using (var file = File.Create(source))
            resource.CopyTo(file);
        var program = ctx.Scratch("nbd-minimal-server");
        if (Run(gcc, ["-O2", "-o", program, source]) is { } error) throw new InvalidOperationException($"gcc failed: {error}");
        var sock = ctx.Scratch("minimal.sock");
        return NbdServerProcess.Start("minimal C server", program, [sock, image], sock, readyLine: "ready");
    }

    /// <summary>CPU microseconds per request: <paramref name="cpu"/> over <paramref name="requests"/> (0 when none completed).</summary>
    internal static double CpuMicrosPerRequest(TimeSpan cpu, long requests) => requests <= 0 ? 0 : cpu.TotalMicroseconds / requests;

    /// <summary>Starts <c>blktap nbd serve</c> (this very blktap) on a socket in the scratch directory with <paramref name="taps"/>.</summary>
    internal static NbdServerProcess StartOurs(BenchContext ctx, string name, string[] taps)
    {
        var sock = ctx.Scratch(name + ".sock");
        var (program, prefix) = PeerPrograms.Blktap();
        var args = new List<string>(prefix) { "nbd", "serve", "--unix", sock };
        foreach (var t in taps) { args.Add("--tap"); args.Add(t); }
        return NbdServerProcess.Start("blktap nbd serve", program, args, sock, readyLine: "blktap: serving");
    }

    /// <summary>Starts a peer server; (null, why) when it is not installed or does not start.</summary>
    internal static (NbdServerProcess? Server, string? Note) TryStart(Func<NbdServerProcess?> start, string what)
    {
        try
        {
            var s = start();
            return s == null ? (null, $"{what} not installed: theirs not measured") : (s, null);
        }
        catch (InvalidOperationException ex) { return (null, $"{what} did not start ({ex.Message}): theirs not measured"); }
    }

    /// <summary>Runs <paramref name="program"/> to completion: null on success, else its stderr.</summary>
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
