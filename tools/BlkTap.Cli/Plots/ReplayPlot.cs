using System.Diagnostics;
using System.Globalization;
using BlkTap.Trace;
using HdrHistogram;
using ScottPlot;

namespace BlkTap.Cli.Plots;

/// <summary>
/// <c>blktap replay --plot FILE.png</c>: one PNG of <see cref="Width"/> by <see cref="Height"/> pixels, the latency CDF
/// of each operation on top (percentile against latency, on a log scale) and the completions per second over the
/// replay below. Rendered headless with ScottPlot (SkiaSharp's self-contained Linux build: no fontconfig needed).
/// </summary>
/// <remarks>Threading: stateless; call after the replay, from any thread.</remarks>
internal static class ReplayPlot
{
    /// <summary>Width of the picture in pixels.</summary>
    public const int Width = 1200;
    /// <summary>Height of the picture in pixels.</summary>
    public const int Height = 1000;

    /// <summary>Draws <paramref name="statistics"/> and <paramref name="timeline"/> into the PNG <paramref name="path"/>.</summary>
    /// <param name="path">The file to write (replaced).</param>
    /// <param name="title">What was replayed, for the titles.</param>
    /// <param name="statistics">The replay's figures (per-operation latency histograms).</param>
    /// <param name="timeline">Completion times.</param>
    public static void Save(string path, string title, ReplayStatistics statistics, ReplayTimeline timeline)
    {
        var multiplot = new Multiplot();
        multiplot.AddPlots(2);
        DrawCdf(multiplot.GetPlot(0), title, statistics);
        DrawIops(multiplot.GetPlot(1), timeline);
        multiplot.SavePng(path, Width, Height);
    }

    /// <summary>The percentiles at which the CDF is drawn: dense in the body, then each nine of the tail.</summary>
    internal static IEnumerable<double> Percentiles()
    {
        for (double p = 0; p < 90; p += 1) yield return p;
        for (double p = 90; p < 99; p += 0.25) yield return p;
        foreach (var p in new[] { 99, 99.5, 99.9, 99.95, 99.99, 99.999, 100 }) yield return p;
    }

    private static void DrawCdf(Plot plot, string title, ReplayStatistics statistics)
    {
        double lo = double.MaxValue, hi = 0;
        for (int op = 0; op < ReplayStatistics.OperationNames.Count; op++)
        {
            if (statistics.Completed[op] == 0) continue;
            var h = statistics.LatencyHistogram(op);
            var ps = Percentiles().ToArray();
            // log10 of the latency in microseconds (at least 0.1 us, so log10 is defined); the ticks say the real value.
            var xs = ps.Select(p => Math.Log10(Math.Max(0.1, h.GetValueAtPercentile(p) / 1000.0))).ToArray();
            lo = Math.Min(lo, xs.Min());
            hi = Math.Max(hi, xs.Max());
            var line = plot.Add.ScatterLine(xs, ps);
            line.LegendText = string.Create(CultureInfo.InvariantCulture, $"{ReplayStatistics.OperationNames[op]} ({statistics.Completed[op]}, p99 {statistics.LatencyUs(op, 99):F1} µs)");
            line.LineWidth = 2;
        }
        plot.Title($"latency CDF: {title}");
        plot.XLabel("latency (µs, log scale)");
        plot.YLabel("percentile");
        if (hi > 0 || lo < double.MaxValue)
        {
            int first = (int)Math.Floor(Math.Min(lo, hi)), last = (int)Math.Ceiling(hi);
            if (last == first) last++;
            var ticks = Enumerable.Range(first, last - first + 1).Select(e => (double)e).ToArray();
            plot.Axes.Bottom.SetTicks(ticks, ticks.Select(e => Math.Pow(10, e).ToString(e < 0 ? "0.###" : "#,0", CultureInfo.InvariantCulture)).ToArray());
            plot.Axes.SetLimitsX(first, last);
        }
        plot.Axes.SetLimitsY(0, 100);
        plot.ShowLegend(Alignment.LowerRight);
    }

    private static void DrawIops(Plot plot, ReplayTimeline timeline)
    {
        var (seconds, iops) = timeline.Rates(200);
        if (seconds.Length > 0)
        {
            var line = plot.Add.ScatterLine(seconds, iops);
            line.LineWidth = 2;
            line.LegendText = string.Create(CultureInfo.InvariantCulture, $"{timeline.Count} completions, {timeline.Count / Math.Max(1e-9, timeline.Elapsed.TotalSeconds):F0} IOPS on average");
            plot.ShowLegend(Alignment.LowerRight);
            plot.Axes.SetLimits(0, seconds[^1] + seconds[0], 0, Math.Max(1, iops.Max()) * 1.1);
        }
        plot.Title("completions per second over the replay");
        plot.XLabel("time since the replay started (s)");
        plot.YLabel("IOPS");
    }
}

/// <summary>
/// When each request of a replay completed, for <see cref="ReplayPlot"/>'s IOPS over time.
/// </summary>
/// <remarks>Threading: <see cref="Record"/> is called serially (under the replay driver's lock); read after the replay.</remarks>
internal sealed class ReplayTimeline
{
    private readonly List<long> _ticks = new();
    private long _start = Stopwatch.GetTimestamp();

    /// <summary>Completions recorded.</summary>
    public int Count => _ticks.Count;

    /// <summary>From <see cref="Start"/> to the last completion.</summary>
    public TimeSpan Elapsed => _ticks.Count == 0 ? TimeSpan.Zero : Stopwatch.GetElapsedTime(_start, _ticks[^1]);

    /// <summary>Marks the replay's start (now).</summary>
    public void Start() => _start = Stopwatch.GetTimestamp();

    /// <summary>Records one completion (now).</summary>
    public void Record() => _ticks.Add(Stopwatch.GetTimestamp());

    /// <summary>
    /// Completions per second in at most <paramref name="buckets"/> equal intervals from the start to the last
    /// completion: each interval's middle (seconds) and its rate.
    /// </summary>
    public (double[] Seconds, double[] Iops) Rates(int buckets)
    {
        if (_ticks.Count == 0) return ([], []);
        double total = Math.Max(Elapsed.TotalSeconds, 1e-6);
        int n = Math.Clamp((int)Math.Ceiling(Math.Sqrt(_ticks.Count)), 1, buckets);
        double width = total / n;
        var counts = new double[n];
        foreach (var t in _ticks)
            counts[Math.Min(n - 1, (int)(Stopwatch.GetElapsedTime(_start, t).TotalSeconds / width))]++;
        return (Enumerable.Range(0, n).Select(i => (i + 0.5) * width).ToArray(), counts.Select(c => c / width).ToArray());
    }
}
