using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using BlkTap.Chains;
using BlkTap.Cli.Output;
using BlkTap.Cli.Plots;
using BlkTap.Emulator;
using BlkTap.Trace;

namespace BlkTap.Cli.Commands;

/// <summary>
/// <c>blktap replay TRACE</c>: drives a trace through emulated frontends and a chain, with timing,
/// queue depth, optional verification of every read, and latency percentiles.
/// </summary>
/// <remarks>
/// <para>Bad input: the whole trace is read and checked once before anything is issued (format,
/// CRCs, every line, lengths, the disk size); any problem is one stderr line naming the file and
/// the byte offset, line or record, exit 2, and nothing is replayed. If the file changes between
/// that pass and the replay and turns out bad, the replay stops before issuing the bad record,
/// drains what is in flight and says how many requests were issued (exit 2).</para>
/// <para>Sessions: trace sessions map to guest domains in order of first appearance; with
/// <c>--frontends N</c> smaller than the number of sessions, session k goes to frontend k mod N.</para>
/// <para>Disk size (<see cref="ReplayPlan"/>): when the chain is just <c>mem</c> without <c>size=</c>, the disk is sized to the
/// trace (its highest sector rounded up to 1 MiB, at least 64 MiB); otherwise a disk smaller than
/// the trace's highest sector is an error (exit 2) telling the user the size needed.</para>
/// <para>Verification (<c>--verify</c>, counted by <see cref="ReplayStatistics"/>): writes carry <see cref="ReplayData"/> content; each read is
/// checked against <see cref="ReplayVerifier"/>. Sectors never written by the trace must read as zeros
/// only when the terminator is <c>mem</c> (a fresh disk); on any other terminator (an image with
/// content) they are not checked. One model for all sessions when they share a disk (<c>mem</c>
/// unless <c>shared=false</c>, <c>img</c> with <c>path=</c>, anything else), one per session otherwise.</para>
/// <para>Deterministic mode (<c>--deterministic</c>) runs on one thread with seeded scheduling and
/// ignores --timing (it has no clock): same seed, same order of requests at the tap.</para>
/// <para>Threads: the guests run on the emulator's thread and, unless <c>--tap-thread</c>, so does the tap's loop
/// (<see cref="EmulatorRigOptions.TapOnScheduler"/>).</para>
/// </remarks>
internal static class ReplayCommand
{
    private static IReadOnlyList<string> OpNames => ReplayStatistics.OperationNames;

    public static Command Create(CliIo io)
    {
        var trace = new Argument<string>("TRACE") { Description = "the trace file (native, text, blkparse output, MSR Cambridge CSV, fio iolog v2/v3)" };
        var format = TraceCommand.InputFormat("--format");
        var taps = ChainOptions.Tap();
        var plugins = ChainOptions.Plugins();
        var timing = new Option<string>("--timing") { Description = "original (default: each request at its submit time), fast (as fast as --qd allows) or scale=X (times multiplied by X)", DefaultValueFactory = _ => "original" };
        var qd = new Option<int>("--qd") { Description = "requests in flight per frontend at most (default 32)", DefaultValueFactory = _ => 32 };
        var verify = new Option<bool>("--verify") { Description = "fill writes with verifiable data and check every read against the trace's own earlier writes" };
        var json = CliJson.Option("trace, chain, iops, ops with latency percentiles, verify, ok");
        var plot = new Option<string?>("--plot") { Description = "also draw the latency CDF per operation and IOPS over time into this PNG file" };
        var hdrLog = new Option<string?>("--hdr-log") { Description = "also write the latency histograms (one per operation, tagged, in ns) in HdrHistogram's log format to this file" };
        var frontends = new Option<int?>("--frontends") { Description = "number of guest domains (default: one per trace session)" };
        var deterministic = new Option<bool>("--deterministic") { Description = "one thread, seeded scheduling, reproducible; implies fast timing" };
        var seed = new Option<int>("--seed") { Description = "seed of deterministic scheduling (default 1)", DefaultValueFactory = _ => 1 };
        var tapThread = new Option<bool>("--tap-thread") { Description = "run the tap's loop on a thread of its own, beside the guests' (default: guests and tap take turns on one thread, which is faster on a few cores)" };
        var cmd = new Command("replay", "replay a request trace through emulated frontends and a chain (IOPS, throughput, latency percentiles, optional verification)");
        cmd.Arguments.Add(trace);
        foreach (var o in new Option[] { format, taps, plugins, timing, qd, verify, json, plot, hdrLog, frontends, deterministic, seed, tapThread }) cmd.Options.Add(o);
        cmd.SetAction(async (parse, ct) =>
        {
            try
            {
                return await RunAsync(new Settings(
                    parse.GetValue(trace)!, parse.GetValue(format)!, parse.GetValue(taps)!, parse.GetValue(plugins), parse.GetValue(timing)!,
                    parse.GetValue(qd), parse.GetValue(verify), parse.GetValue(json), parse.GetValue(frontends), parse.GetValue(deterministic),
                    parse.GetValue(seed), parse.GetValue(plot), parse.GetValue(hdrLog), parse.GetValue(tapThread)), io, ct);
            }
            catch (ChainSpecException ex) { return io.BadInput(ex.Message); } // async actions do not reach CliApp's handler
        });
        return cmd;
    }

    private sealed record Settings(string Trace, string Format, string[] Taps, string[]? Plugins, string Timing, int QueueDepth,
        bool Verify, bool Json, int? Frontends, bool Deterministic, int Seed, string? Plot, string? HdrLog, bool TapThread);

    internal static TraceFormat? ParseFormat(string text) => text switch
    {
        "auto" => null,
        "native" => TraceFormat.Native,
        "text" => TraceFormat.Text,
        "blkparse" => TraceFormat.Blkparse,
        "msr" => TraceFormat.Msr,
        "fio" => TraceFormat.Fio,
        _ => throw new ChainSpecException($"--input-format '{text}': use auto, native, text, blkparse, msr or fio"),
    };

    private static double? ParseTiming(string text)
    {
        if (text == "original") return 1.0;
        if (text == "fast") return null;
        if (text.StartsWith("scale=", StringComparison.Ordinal)
            && double.TryParse(text.AsSpan(6), NumberStyles.Float, CultureInfo.InvariantCulture, out var x) && double.IsFinite(x) && x >= 0)
            return x;
        throw new ChainSpecException($"--timing '{text}': use original, fast or scale=X (X a number ≥ 0)");
    }

    private static async Task<int> RunAsync(Settings s, CliIo io, CancellationToken ct)
    {
        var format = ParseFormat(s.Format);
        var scale = ParseTiming(s.Timing);
        if (s.QueueDepth is < 1 or > 4096) return io.BadInput($"--qd {s.QueueDepth}: must be 1 to 4096");
        if (s.Frontends is { } fe && fe is < 1 or > 64) return io.BadInput($"--frontends {fe}: must be 1 to 64");
        if (!File.Exists(s.Trace)) return io.BadInput($"{s.Trace}: file not found");
        foreach (var (option, file) in new[] { ("--plot", s.Plot), ("--hdr-log", s.HdrLog) })
        {
            if (file == null) continue;
            if (Directory.Exists(file)) return io.BadInput($"{option} '{file}': is a directory");
            if (Path.GetDirectoryName(Path.GetFullPath(file)) is { } dir && !Directory.Exists(dir)) return io.BadInput($"{option} '{file}': directory '{dir}' does not exist");
        }

        // Pass 1: read and check the whole trace before issuing anything.
        TraceFormat detected;
        TraceSummary summary;
        try
        {
            detected = format ?? TraceFormats.Detect(s.Trace);
            summary = TraceSummary.Scan(TraceFormats.Read(s.Trace, detected));
        }
        catch (TraceFormatException ex) { return io.BadInput(ex.Message + " (nothing was replayed)"); }
        catch (IOException ex) { return io.BadInput($"{s.Trace}: {ex.Message}"); }
        if (summary.FirstUnreplayable is { } bad)
            return io.BadInput($"{s.Trace}: record {bad.Index}: {bad.Problem} (nothing was replayed)");

        var plan = ReplayPlan.For(ChainOptions.Specs(s.Taps), summary);

        int sessions = Math.Max(1, summary.Sessions.Count);
        int frontendCount = s.Frontends ?? sessions;
        var registry = ChainOptions.Registry(s.Plugins);
        var tapOutput = s.Json ? io.Err : io.Out;
        var chain = registry.Build(plan.Specs, new TapContext { Output = tapOutput, Seed = s.Seed });
        var diagnostics = new List<string>();
        EmulatorRig? rig = null;
        var statistics = new ReplayStatistics(s.Verify, plan.SharedDisk, plan.InitiallyZero, frontendCount);
        long issued = 0;
        TimeSpan elapsed;
        var timeline = new ReplayTimeline();
        var startedUtc = DateTime.UtcNow;
        List<string> duringReplay = [];
        try
        {
            rig = await EmulatorRig.StartAsync(new EmulatorRigOptions
            {
                Frontends = frontendCount,
                Deterministic = s.Deterministic,
                Seed = s.Seed,
                RandomFirstSector = false,
                // Read-only grants stay write-protected (the default): a tap under replay that writes into a write
                // request's data faults, as on real Xen. Turning it off measured no gain (with persistent grants each
                // page is mapped, and copied, once).
                // One thread for guests and tap unless asked: on a few busy cores the two threads mostly wake each other
                // (a futex handoff per batch with queue depth 32) instead of running side by side.
                TapOnScheduler = !s.TapThread,
                Diagnostics = d => { lock (diagnostics) diagnostics.Add(d.ToString()); },
            }, runtime => TapChain.Register(runtime, chain));
            ulong smallest = rig.Frontends.Min(f => f.Sectors);
            if (summary.EndSector > smallest)
                return io.BadInput($"{s.Trace}: the trace reaches sector {summary.EndSector} ({summary.EndSector * 512} bytes) but the disk has {smallest} sectors: give the terminator at least that size (for example mem:size={ReplayPlan.RequiredMebibytes(summary)}M) (nothing was replayed)");

            var driver = new ReplayDriver(rig, new ReplayDriverOptions { QueueDepth = s.QueueDepth, TimeScale = scale, SharedDisk = plan.SharedDisk }, new Observer(statistics, s.Plot != null ? timeline : null));
            // Read, checked and converted on another core while the replay issues what it has (ReadAhead).
            var requests = ReadAhead.Of(Requests(s.Trace, detected, summary, frontendCount));
            try
            {
                startedUtc = DateTime.UtcNow;
                timeline.Start();
                if (!s.Deterministic && CliProgress.Enabled(io))
                {
                    using var bar = CliProgress.Start(io, $"replay {Path.GetFileName(s.Trace)}", summary.Records);
                    var run = driver.RunAsync(requests, ct);
                    while (!run.IsCompleted)
                    {
                        bar.Value = driver.Completed;
                        await Task.WhenAny(run, Task.Delay(100, CancellationToken.None));
                    }
                    bar.Value = driver.Completed;
                    elapsed = await run;
                }
                else elapsed = await driver.RunAsync(requests, ct);
            }
            catch (TimeoutException ex)
            {
                io.Err.WriteLine($"blktap: replay stuck after issuing {driver.Issued} of {summary.Records} requests: {ex.Message}");
                return CliApp.Failure;
            }
            catch (TraceFormatException ex)
            {
                return io.BadInput($"{ex.Message} (the file changed during the replay: stopped after issuing {driver.Issued} of {summary.Records} requests)");
            }
            issued = driver.Issued;
            lock (diagnostics) duringReplay = diagnostics.ToList(); // not the shutdown's session-closed lines
        }
        finally
        {
            if (rig != null) await rig.DisposeAsync();
            chain.Dispose();
        }

        bool ok = statistics.Passed;
        string? writing = null;
        try
        {
            if (s.Plot != null && PlotFonts.Warning() is { } noFonts) io.Err.WriteLine(noFonts);
            if ((writing = s.Plot) != null) ReplayPlot.Save(writing, $"{Path.GetFileName(s.Trace)} through {string.Join(" → ", s.Taps)}", statistics, timeline);
            if ((writing = s.HdrLog) != null) ReplayHdrLog.Save(writing, statistics, startedUtc, elapsed);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return io.BadInput($"{writing}: cannot write: {ex.Message}");
        }
        if (s.Json) WriteJson(io, s, detected, summary, frontendCount, elapsed, issued, statistics, ok, plan);
        else WriteText(io, s, detected, summary, frontendCount, elapsed, issued, statistics, ok, plan, duringReplay);
        return ok ? CliApp.Ok : CliApp.Failure;
    }

    private static IEnumerable<ReplayRequest> Requests(string path, TraceFormat format, TraceSummary summary, int frontends)
    {
        foreach (var r in TraceFormats.Read(path, format))
        {
            int index = summary.SessionIndex(r.Session);
            if (index < 0) throw TraceFormatException.ForFile(path, $"session {r.Session} did not appear when the trace was first read");
            uint length = r.Operation == BlkifOperation.Discard ? r.Length : (uint)((r.Length + 511UL) & ~511UL);
            yield return new ReplayRequest(index % frontends, r.Operation, r.Sector, length, r.SubmitNs - Math.Min(r.SubmitNs, summary.FirstSubmitNs), r.Status);
        }
    }

    /// <summary>Hands the driver's completions to the statistics; called under the driver's lock (never concurrently).</summary>
    private sealed class Observer(ReplayStatistics statistics, ReplayTimeline? timeline) : IReplayObserver
    {
        // Without --verify nothing looks at what reads return. Writes are always filled: a capture of the replay
        // (dump:hash=true) records ReplayData of each write's sector and sequence.
        public bool WantsReadData => statistics.Verifies;

        public void FillWrite(in ReplayRequest request, ulong writeSequence, Span<byte> data) => ReplayData.Fill(data, request.Sector, writeSequence);

        public void OnCompleted(in ReplayCompletion c, ReadOnlySpan<byte> readData)
        {
            var r = c.Request;
            timeline?.Record();
            statistics.Record(new ReplayOutcome(c.Index, r.Frontend, r.Operation, r.Sector, r.Length, r.ExpectedStatus, c.Status, c.Skipped,
                c.WriteSequence, (long)(c.LatencyTicks * (1e9 / Stopwatch.Frequency))), readData);
        }
    }

    private static void WriteJson(CliIo io, Settings s, TraceFormat format, TraceSummary summary, int frontends, TimeSpan elapsed, long issued,
        ReplayStatistics o, bool ok, ReplayPlan plan)
    {
        double secs = Math.Max(elapsed.TotalSeconds, 1e-9);
        long done = o.Completed.Sum();
        var ops = new Dictionary<string, object>();
        for (int i = 0; i < OpNames.Count; i++)
        {
            ops[OpNames[i]] = new
            {
                count = o.Completed[i], bytes = o.Bytes[i], errors = o.Failed[i], skipped = o.Skipped[i],
                latency_us = new { p50 = o.LatencyUs(i, 50), p90 = o.LatencyUs(i, 90), p99 = o.LatencyUs(i, 99), p99_9 = o.LatencyUs(i, 99.9), max = o.MaxLatencyUs(i) },
            };
        }
        var obj = new
        {
            trace = s.Trace,
            format = format.ToString().ToLowerInvariant(),
            records = summary.Records,
            sessions = summary.Sessions.Count,
            frontends,
            chain = s.Taps,
            disk_bytes = plan.AutoSized ? plan.DiskBytes : (long?)null,
            timing = s.Deterministic ? "fast" : s.Timing,
            qd = s.QueueDepth,
            deterministic = s.Deterministic,
            tap_thread = s.TapThread,
            issued,
            completed = done,
            skipped = o.Skipped.Sum(),
            errors = o.Errors,
            elapsed_s = elapsed.TotalSeconds,
            iops = done / secs,
            throughput_mib_s = (o.Bytes[0] + o.Bytes[1] + o.Bytes[2] + o.Bytes[3]) / 1048576.0 / secs,
            read_mib_s = o.Bytes[0] / 1048576.0 / secs,
            write_mib_s = (o.Bytes[1] + o.Bytes[2] + o.Bytes[3]) / 1048576.0 / secs,
            ops,
            verify = new { enabled = s.Verify, reads_checked = o.ReadsChecked, mismatches = o.Mismatches, first_mismatches = o.FirstMismatches },
            first_errors = o.FirstErrors,
            ok,
        };
        io.Out.WriteLine(JsonSerializer.Serialize(obj));
    }

    private static void WriteText(CliIo io, Settings s, TraceFormat format, TraceSummary summary, int frontends, TimeSpan elapsed, long issued,
        ReplayStatistics o, bool ok, ReplayPlan plan, List<string> diagnostics)
    {
        var ci = CultureInfo.InvariantCulture;
        double secs = Math.Max(elapsed.TotalSeconds, 1e-9);
        long done = o.Completed.Sum();
        var w = io.Out;
        w.WriteLine(string.Create(ci, $"replay {s.Trace} ({format.ToString().ToLowerInvariant()}, {summary.Records} records, {summary.Sessions.Count} session(s) on {frontends} frontend(s)), chain {string.Join(" -> ", s.Taps)}, timing {(s.Deterministic ? "fast (deterministic)" : s.Timing)}, qd {s.QueueDepth}"));
        if (plan.AutoSized) w.WriteLine(string.Create(ci, $"  mem sized to the trace: {plan.DiskBytes >> 20} MiB"));
        w.WriteLine(string.Create(ci, $"  {issued} issued, {done} completed, {o.Skipped.Sum()} skipped in {elapsed.TotalSeconds:F3} s: {done / secs:F0} IOPS, {(o.Bytes[0] + o.Bytes[1] + o.Bytes[2] + o.Bytes[3]) / 1048576.0 / secs:F2} MiB/s"));
        w.WriteLine("  op          count     MiB  errors skipped    p50 us    p90 us    p99 us  p99.9 us    max us");
        for (int i = 0; i < OpNames.Count; i++)
        {
            if (o.Completed[i] == 0 && o.Skipped[i] == 0) continue;
            w.WriteLine(string.Create(ci, $"  {OpNames[i],-8} {o.Completed[i],8} {o.Bytes[i] / 1048576.0,7:F2} {o.Failed[i],7} {o.Skipped[i],7} {o.LatencyUs(i, 50),9:F1} {o.LatencyUs(i, 90),9:F1} {o.LatencyUs(i, 99),9:F1} {o.LatencyUs(i, 99.9),9:F1} {o.MaxLatencyUs(i),9:F1}"));
        }
        foreach (var d in diagnostics.Take(20)) w.WriteLine($"  diagnostic: {d}");
        foreach (var e in o.FirstErrors) w.WriteLine($"  error: {e}");
        foreach (var m in o.FirstMismatches) w.WriteLine($"  MISMATCH: {m}");
        if (s.Verify)
            w.WriteLine(ok ? $"verified: {o.ReadsChecked} reads matched the trace's writes" : $"FAILED: {o.Mismatches} mismatching reads, {o.Errors} failed requests");
        else
            w.WriteLine(ok ? "ok" : $"FAILED: {o.Errors} failed requests");
    }
}
