using System.Globalization;
using BlkTap.Bench;
using ScottPlot;

namespace BlkTap.Cli.Plots;

/// <summary>
/// <c>blktap bench --plot DIR</c>: one PNG per benchmark group, <c>DIR/GROUP.png</c>, a horizontal bar per benchmark
/// line showing its ratio against the baseline measured in the same run (above 1: we win), with a line at 1.
/// Lines without a baseline have no ratio and are left out (the title says how many).
/// </summary>
/// <remarks>Threading: stateless; call after the run.</remarks>
internal static class BenchPlot
{
    /// <summary>Width of each picture in pixels.</summary>
    public const int Width = 1400;

    /// <summary>Height of a picture of <paramref name="bars"/> bars, in pixels.</summary>
    public static int HeightFor(int bars) => 160 + 34 * Math.Max(1, bars);

    /// <summary>Draws <paramref name="results"/> of group <paramref name="group"/> into <c>DIR/GROUP.png</c>; returns the path.</summary>
    public static string Save(string directory, string group, string title, IReadOnlyList<BenchResult> results, bool quick)
    {
        var withRatio = results.Where(r => r.Ratio is not null).ToList();
        var plot = new Plot();
        // Top to bottom in run order: the first line is the highest bar.
        var bars = withRatio.Select((r, i) => new Bar
        {
            Position = withRatio.Count - 1 - i,
            Value = r.Ratio!.Value,
            FillColor = r.Ratio!.Value >= 1 ? Colors.SeaGreen : Colors.IndianRed,
            Label = r.Ratio!.Value.ToString("F2", CultureInfo.InvariantCulture),
        }).ToList();
        var barPlot = plot.Add.Bars(bars);
        barPlot.Horizontal = true;
        barPlot.ValueLabelStyle.FontSize = 13;
        plot.Axes.Left.SetTicks(bars.Select(b => b.Position).ToArray(), withRatio.Select(r => Shorten(r.Name, group)).ToArray());
        var one = plot.Add.VerticalLine(1);
        one.LinePattern = LinePattern.Dashed;
        one.Color = Colors.Black;
        int left = results.Count - withRatio.Count;
        plot.Title($"blktap bench: {title}{(quick ? " (--quick: smoke-test figures)" : "")}{(left > 0 ? $"; {left} line(s) without a baseline left out" : "")}");
        plot.XLabel("ratio against the baseline measured in the same run (> 1: better)");
        double max = bars.Count == 0 ? 2 : Math.Max(1.2, bars.Max(b => b.Value) * 1.15);
        plot.Axes.SetLimits(0, max, -0.6, Math.Max(0.6, bars.Count - 0.4));
        Directory.CreateDirectory(directory);
        var path = Path.Combine(directory, $"{group}.png");
        plot.SavePng(path, Width, HeightFor(bars.Count));
        return path;
    }

    private static string Shorten(string name, string group)
    {
        if (name.StartsWith(group + ": ", StringComparison.Ordinal)) name = name[(group.Length + 2)..];
        return name.Length <= 70 ? name : name[..67] + "...";
    }
}
