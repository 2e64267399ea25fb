using System.Diagnostics;
using BlkTap.Chains;
using BlkTap.Cli.Output;
using BlkTap.Emulator;
using BlkTap.Examples;
using Spectre.Console;

namespace BlkTap.Cli.Commands;

/// <summary>
/// Builds a chain, starts the emulator rig with it, runs a verified workload and prints a summary (a table, or with
/// <see cref="Settings.Json"/> one JSON object: the taps then print to stderr). Shared by demo and run.
/// </summary>
internal static class ChainRun
{
    public sealed record Settings(
        IReadOnlyList<TapSpec> Specs, TapRegistry Registry, int Frontends, WorkloadOptions Workload,
        bool Deterministic, int Seed, BlkifProtocol Protocol, bool ShowDump, bool Json = false);

    public static async Task<int> RunAsync(Settings settings, CliIo io)
    {
        var taps = settings.Registry.Build(settings.Specs, new TapContext { Output = settings.Json ? io.Err : io.Out, Seed = settings.Seed });
        var diagnostics = new List<string>();
        var control = new List<string>();
        var sw = Stopwatch.StartNew();
        EmulatorRig? rig = null;
        try
        {
            rig = await EmulatorRig.StartAsync(new EmulatorRigOptions
            {
                Frontends = settings.Frontends,
                Deterministic = settings.Deterministic,
                Seed = settings.Seed,
                Protocol = settings.Protocol,
                Diagnostics = d => { lock (diagnostics) diagnostics.Add(d.ToString()); },
            }, runtime =>
            {
                runtime.RegisterControlHook("cli", Hook.Control(e => { lock (control) control.Add($"{e.Kind,-10} {e.Session.Name,-14} image={e.Session.ImageId} sectors={e.Session.Sectors}"); }));
                TapChain.Register(runtime, taps);
            });
            // A terminator that could not open its disk (an NBD server that answers garbage, an image it cannot
            // read) reported why and left the disk without a size: that is bad input, said in one line.
            if (rig.Runtime.Sessions.Any(s => s.Sectors == 0))
            {
                string? cause;
                lock (diagnostics) cause = diagnostics.FirstOrDefault(d => d.StartsWith("Error: ", StringComparison.Ordinal));
                if (cause != null) return io.BadInput($"{cause["Error: ".Length..]}: nothing was run");
            }
            IReadOnlyList<FrontendResult> results;
            long expected = (long)settings.Workload.OperationsPerFrontend * rig.Frontends.Count;
            using (var bar = CliProgress.Start(io, "workload", expected))
            {
                long completed = 0;
                if (CliProgress.Enabled(io)) settings.Workload.Progress = () => bar.Value = Interlocked.Increment(ref completed);
                results = await new VerifiedWorkload(settings.Workload).RunAsync(rig);
            }
            sw.Stop();
            long total = results.Sum(r => r.Operations);
            bool ok = results.All(r => r.Errors == 0 && r.Mismatches == 0) && total == expected;
            if (settings.Json)
            {
                WriteJson(io, settings, rig, taps, results, Snapshot(control), Snapshot(diagnostics), sw.Elapsed, ok);
                return ok ? CliApp.Ok : CliApp.Failure;
            }
            var console = CliConsole.Create(io, 120);
            console.MarkupLine($"[bold]blktap[/]: {rig.Frontends.Count} guest domain(s) connected to dom0's tap, chain [green]{Markup.Escape(string.Join(" → ", settings.Specs.Select(s => s.Text)))}[/] ({(settings.Deterministic ? $"deterministic, seed {settings.Seed}" : "threaded")}, {settings.Protocol.ToName()})");
            // The control hook runs on the tap's loop and may still add a line (a late event): read a copy taken under its lock.
            foreach (var line in Snapshot(control)) console.MarkupLine($"  [grey]{Markup.Escape(line)}[/]");
            var table = new Table().AddColumns("session", "ops", "reads", "writes", "flushes", "discards", "MiB read", "MiB written", "errors", "mismatches");
            for (int i = 0; i < results.Count; i++)
            {
                var r = results[i];
                table.AddRow(r.Name, r.Operations.ToString(), r.Reads.ToString(), r.Writes.ToString(), r.Flushes.ToString(), r.Discards.ToString(),
                    (r.BytesRead / 1048576.0).ToString("F2"), (r.BytesWritten / 1048576.0).ToString("F2"),
                    r.Errors == 0 ? "0" : $"[red]{r.Errors}[/]", r.Mismatches == 0 ? "0" : $"[red]{r.Mismatches}[/]");
            }
            console.Write(table);
            var sessions = rig.Runtime.Sessions.ToList();
            foreach (var s in sessions)
                console.MarkupLine($"  tap session {Markup.Escape(s.Name)}: {s.Statistics.Requests} requests ({s.Statistics.Errors} errors, {s.Statistics.Rejected} rejected), {s.Statistics.BytesRead / 1048576.0:F2} MiB read, {s.Statistics.BytesWritten / 1048576.0:F2} MiB written");
            foreach (var t in taps.OfType<DumpTap>())
                console.MarkupLine($"  dump saw {t.Requests} requests and {t.Responses} responses");
            lock (diagnostics) foreach (var d in diagnostics.Take(20)) console.MarkupLine($"  [yellow]{Markup.Escape(d)}[/]");
            foreach (var r in results) foreach (var p in r.Problems) console.MarkupLine($"  [red]{Markup.Escape(r.Name)}: {Markup.Escape(p)}[/]");
            console.MarkupLine(ok
                ? $"[green]verified[/]: {total} operations, every read matched the model, in {sw.Elapsed.TotalSeconds:F2} s"
                : $"[red]FAILED[/]: {results.Sum(r => r.Errors)} errors, {results.Sum(r => r.Mismatches)} mismatches in {total} operations");
            return ok ? CliApp.Ok : CliApp.Failure;
        }
        finally
        {
            if (rig != null) await rig.DisposeAsync();
            taps.Dispose();
        }
    }

    /// <summary>A copy of a list that hooks on other threads append to under its lock.</summary>
    private static List<string> Snapshot(List<string> list)
    {
        lock (list) return [.. list];
    }

    private static void WriteJson(CliIo io, Settings settings, EmulatorRig rig, TapChain taps, IReadOnlyList<FrontendResult> results,
        List<string> control, List<string> diagnostics, TimeSpan elapsed, bool ok)
    {
        var w = settings.Workload;
        CliJson.Write(io.Out, new
        {
            chain = settings.Specs.Select(s => s.Text),
            frontends = rig.Frontends.Count,
            deterministic = settings.Deterministic,
            seed = settings.Seed,
            protocol = settings.Protocol.ToName(),
            workload = new
            {
                ops_per_frontend = w.OperationsPerFrontend, qd = w.QueueDepth, max_sectors = w.MaxSectors,
                writes_pct = w.WritePercent, flushes_pct = w.FlushPercent, discards_pct = w.DiscardPercent,
            },
            operations = results.Sum(r => r.Operations),
            sessions = results.Select(r => new
            {
                name = r.Name, operations = r.Operations, reads = r.Reads, writes = r.Writes, flushes = r.Flushes, discards = r.Discards,
                bytes_read = r.BytesRead, bytes_written = r.BytesWritten, errors = r.Errors, mismatches = r.Mismatches, problems = r.Problems,
            }),
            tap_sessions = rig.Runtime.Sessions.Select(s => new
            {
                name = s.Name, requests = s.Statistics.Requests, errors = s.Statistics.Errors, rejected = s.Statistics.Rejected,
                bytes_read = s.Statistics.BytesRead, bytes_written = s.Statistics.BytesWritten,
            }),
            dump = taps.OfType<DumpTap>().Select(t => new { requests = t.Requests, responses = t.Responses }),
            control,
            diagnostics = diagnostics.Take(20),
            errors = results.Sum(r => r.Errors),
            mismatches = results.Sum(r => r.Mismatches),
            elapsed_s = elapsed.TotalSeconds,
            ok,
        });
    }
}
