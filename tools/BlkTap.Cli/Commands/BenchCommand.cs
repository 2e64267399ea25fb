using System.CommandLine;
using System.Text.Json;
using BlkTap.Cli.Bench;
using Spectre.Console;

namespace BlkTap.Cli.Commands;

/// <summary><c>blktap bench</c>: benchmarks, each printed as ours, the baseline's, and the ratio, all measured in this run.</summary>
internal static class BenchCommand
{
    public static Command Create(CliIo io)
    {
        var json = new Option<bool>("--json") { Description = "print exactly one JSON object on stdout" };
        var quick = new Option<bool>("--quick") { Description = "short runs (a smoke test of every benchmark; the figures mean little)" };
        var cmd = new Command("bench", "benchmarks with ratios against baselines measured in the same run");
        cmd.Options.Add(json);
        cmd.Options.Add(quick);
        cmd.SetAction(parse =>
        {
            bool q = parse.GetValue(quick);
            var results = new List<BenchResult>();
            results.AddRange(RuntimeBenchmarks.Run(q));
            if (parse.GetValue(json))
            {
                var obj = new
                {
                    machine = new { cores = Environment.ProcessorCount, os = System.Runtime.InteropServices.RuntimeInformation.OSDescription, runtime = Environment.Version.ToString() },
                    date = DateTime.UtcNow.ToString("u"),
                    quick = q,
                    results = results.Select(r => new { name = r.Name, ours = r.Ours, theirs = r.Theirs, unit = r.Unit, baseline = r.Baseline, ratio = r.Ratio, higher_is_better = r.HigherIsBetter, note = r.Note }),
                };
                io.Out.WriteLine(JsonSerializer.Serialize(obj));
                return CliApp.Ok;
            }
            var console = CliConsole.Create(io, 160);
            var table = new Table().AddColumns("benchmark", "ours", "theirs", "unit", "ratio", "baseline");
            foreach (var r in results)
                table.AddRow(Markup.Escape(r.Name), r.Ours.ToString("N1"), r.Theirs?.ToString("N1") ?? "-", r.Unit, r.Ratio?.ToString("F2") ?? "-", Markup.Escape(r.Baseline + (r.Note != null ? $" ({r.Note})" : "")));
            console.Write(table);
            if (q) console.MarkupLine("[grey]--quick: figures from short runs, for smoke testing only[/]");
            return CliApp.Ok;
        });
        return cmd;
    }
}
