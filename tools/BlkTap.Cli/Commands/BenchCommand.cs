using System.CommandLine;
using System.Diagnostics;
using BlkTap.Bench;
using BlkTap.Cli.Output;
using BlkTap.Cli.Plots;
using Spectre.Console;

namespace BlkTap.Cli.Commands;

/// <summary>
/// <c>blktap bench [--json] [--quick] [--results PATH] [--plot DIR]</c>: benchmarks, each printed as ours, the
/// baseline's, and the ratio, all measured in this run; with <c>--plot</c> one PNG of ratios per group. Exit 0, or 1
/// when a benchmark failed to run (its line says why); progress (a bar) goes to stderr only when stderr is a terminal.
/// </summary>
internal static class BenchCommand
{
    public static Command Create(CliIo io)
    {
        var json = CliJson.Option("machine, results with ratios, failures");
        var plotDir = new Option<string?>("--plot") { Description = "also draw each group's ratios into DIR/GROUP.png (DIR is created)" };
        var quick = new Option<bool>("--quick") { Description = "tiny runs of everything (a smoke test: correctness only; the figures mean little)" };
        var resultsPath = new Option<string?>("--results") { Description = "also write the results page (markdown) to this path, e.g. bench/RESULTS.md" };
        var only = new Option<string?>("--only")
        {
            Description = $"run only these groups, comma-separated: {string.Join(", ", BenchSuite.Groups.Select(g => g.Name))} "
                + "(runtime also runs when emulator or replay is chosen: it measures their baselines)",
        };
        var cmd = new Command("bench", "benchmarks with ratios against baselines measured in the same run (images in /dev/shm)");
        cmd.Options.Add(json);
        cmd.Options.Add(quick);
        cmd.Options.Add(resultsPath);
        cmd.Options.Add(only);
        cmd.Options.Add(plotDir);
        cmd.SetAction(parse =>
        {
            bool q = parse.GetValue(quick);
            var page = parse.GetValue(resultsPath);
            if (page != null && Path.GetDirectoryName(Path.GetFullPath(page)) is { } dir && !Directory.Exists(dir))
                return io.BadInput($"bench: the directory of --results '{page}' does not exist");
            var selected = BenchSuite.Select(parse.GetValue(only), out var unknown);
            if (unknown != null)
                return io.BadInput($"bench: --only: unknown group '{unknown}' (groups: {string.Join(", ", BenchSuite.Groups.Select(g => g.Name))})");
            if (page != null && selected.Count != BenchSuite.Groups.Count)
                return io.BadInput("bench: --results writes the whole page: run every group (no --only)");
            var plots = parse.GetValue(plotDir);
            if (plots != null && File.Exists(plots)) return io.BadInput($"bench: --plot '{plots}' is a file: give a directory");
            var sw = Stopwatch.StartNew();
            var started = DateTime.UtcNow;
            var results = new List<BenchResult>();
            var failures = new List<string>();
            var groupOf = new List<(BenchGroup Group, int First, int Count)>();
            using (var bar = CliProgress.Start(io, "bench", selected.Count))
            using (var ctx = new BenchContext(q, m => bar.Title = $"bench: {m}", (args, stdout, stderr) => CliApp.Run(args, stdout, stderr)))
            {
                foreach (var g in selected)
                {
                    bar.Title = $"bench: {g.Title}";
                    int first = results.Count;
                    BenchSuite.Run(ctx, g, results, failures);
                    groupOf.Add((g, first, results.Count - first));
                    bar.Value++;
                }
            }
            sw.Stop();
            var machine = BenchMachine.Current();
            if (page != null)
                ResultsPage.Write(page, results, machine, started, $"blktap bench{(q ? " --quick" : "")} --results {page}", q, sw.Elapsed);
            int exit = failures.Count == 0 ? CliApp.Ok : CliApp.Failure;
            var pictures = new List<string>();
            try
            {
                if (plots != null && PlotFonts.Warning() is { } noFonts) io.Err.WriteLine(noFonts);
                if (plots != null)
                    foreach (var (g, first, count) in groupOf)
                        if (count > 0) pictures.Add(BenchPlot.Save(plots, g.Name, g.Title, results.GetRange(first, count), q));
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { return io.BadInput($"bench: --plot '{plots}': {ex.Message}"); }
            if (parse.GetValue(json))
            {
                var obj = new
                {
                    machine = new { cores = machine.Cores, cpu = machine.Cpu, memory_bytes = machine.MemoryBytes, kernel = machine.Kernel, os = machine.Os, runtime = machine.Runtime, build = machine.Build },
                    date = started.ToString("u"),
                    quick = q,
                    elapsed_s = sw.Elapsed.TotalSeconds,
                    results = results.Select(r => new { name = r.Name, ours = r.Ours, theirs = r.Theirs, unit = r.Unit, baseline = r.Baseline, ratio = r.Ratio, higher_is_better = r.HigherIsBetter, note = r.Note }),
                    failures,
                    plots = pictures,
                };
                CliJson.Write(io.Out, obj);
                return exit;
            }
            var console = CliConsole.Create(io, 200);
            var table = new Table().AddColumns("benchmark", "ours", "theirs", "unit", "ratio", "baseline");
            foreach (var r in results)
                table.AddRow(Markup.Escape(r.Name), ResultsPage.Format(r.Ours), r.Theirs is { } t ? ResultsPage.Format(t) : "n/a", r.Unit, r.Ratio?.ToString("F2") ?? "n/a",
                    Markup.Escape(r.Baseline + (r.Note != null ? $" ({r.Note})" : "")));
            console.Write(table);
            foreach (var f in failures) console.MarkupLine($"[red]failed[/]: {Markup.Escape(f)}");
            console.MarkupLine($"[grey]{Markup.Escape(machine.Runtime)}, {Markup.Escape(machine.Build)} build, {machine.Cores} cores[/]");
            if (q) console.MarkupLine("[grey]--quick: figures from short runs, for smoke testing only[/]");
            if (page != null) console.MarkupLine($"results page written to {Markup.Escape(page)}");
            foreach (var p in pictures) console.MarkupLine($"picture written to {Markup.Escape(p)}");
            return exit;
        });
        return cmd;
    }
}
