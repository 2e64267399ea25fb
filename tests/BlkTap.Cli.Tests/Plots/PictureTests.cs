using System.Text.Json;
using BlkTap.Cli.Plots;
using BlkTap.Cli.Tests.Json;
using BlkTap.Cli.Tests.Replay;
using HdrHistogram;
using NUnit.Framework;
using SkiaSharp;

namespace BlkTap.Cli.Tests.Plots;

/// <summary><c>replay --plot</c>, <c>replay --hdr-log</c> and <c>bench --plot</c>: files that real readers load back.</summary>
public class PictureTests : ReplayTestBase
{
    private static readonly byte[] PngSignature = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A];

    private static void AssertPng(string path, int width, int height)
    {
        Assert.That(File.Exists(path), path);
        var bytes = File.ReadAllBytes(path);
        Assert.That(bytes.AsSpan(0, 8).ToArray(), Is.EqualTo(PngSignature), "PNG signature");
        Assert.That(bytes.Length, Is.InRange(5_000, 5_000_000), "a plausible size for a drawn chart");
        using var bitmap = SKBitmap.Decode(bytes);
        Assert.That(bitmap, Is.Not.Null, "SkiaSharp decodes it");
        Assert.That((bitmap.Width, bitmap.Height), Is.EqualTo((width, height)));
        // Not a blank canvas: a chart has many colours (lines, text, legend).
        var colours = new HashSet<uint>();
        for (int y = 0; y < bitmap.Height; y += 7)
            for (int x = 0; x < bitmap.Width; x += 7)
                colours.Add((uint)bitmap.GetPixel(x, y));
        Assert.That(colours, Has.Count.GreaterThan(5));
    }

    [Test]
    public void Replay_Plot_WritesADecodablePngOfTheDocumentedSize()
    {
        var trace = Capture("p.bt", seed: 4, ops: 200);
        var png = PathOf("replay.png");
        var j = JsonOutputTests.Json(0, "replay", trace, "--tap", "mem", "--timing", "fast", "--verify", "--plot", png, "--json");
        Assert.That(j.GetProperty("ok").GetBoolean(), Is.True);
        AssertPng(png, ReplayPlot.Width, ReplayPlot.Height);
    }

    [Test]
    public void Replay_HdrLog_ReadsBackWithTheReplaysRequestCount()
    {
        var trace = Capture("h.bt", seed: 6, ops: 150);
        var log = PathOf("replay.hlog");
        var j = JsonOutputTests.Json(0, "replay", trace, "--input-format", "native", "--tap", "mem", "--timing", "fast", "--hdr-log", log, "--json");
        long completed = j.GetProperty("completed").GetInt64();
        Assert.That(completed, Is.GreaterThan(0));
        Assert.That(File.ReadAllText(PathOf("replay.hlog")), Does.StartWith("#[Histogram log format version"), "ASCII, as the other implementations write it");
        List<HistogramBase> histograms;
        using (var file = File.OpenRead(log))
        using (var reader = new HistogramLogReader(file))
            histograms = reader.ReadHistograms().ToList();
        Assert.That(histograms.Sum(h => h.TotalCount), Is.EqualTo(completed));
        var ops = j.GetProperty("ops");
        foreach (var h in histograms)
        {
            Assert.That(ops.GetProperty(h.Tag).GetProperty("count").GetInt64(), Is.EqualTo(h.TotalCount), h.Tag);
            // Values are nanoseconds: the log's p50 is the JSON's p50 in microseconds, within the histogram's precision.
            double p50us = ops.GetProperty(h.Tag).GetProperty("latency_us").GetProperty("p50").GetDouble();
            Assert.That(h.GetValueAtPercentile(50) / 1000.0, Is.EqualTo(p50us).Within(p50us * 0.01 + 0.01), h.Tag);
        }
        Assert.That(histograms.Select(h => h.Tag), Is.EquivalentTo(ops.EnumerateObject().Where(o => o.Value.GetProperty("count").GetInt64() > 0).Select(o => o.Name)));
    }

    [TestCase("--plot")]
    [TestCase("--hdr-log")]
    public void Replay_OutputInMissingDirectory_ExitTwoBeforeReplaying(string option)
    {
        var trace = Capture("m.bt", seed: 2, ops: 20);
        var (code, stdout, err) = Cli("replay", trace, "--tap", "mem", option, PathOf("no/such/dir/x"));
        Assert.That(code, Is.EqualTo(2));
        Assert.That(err, Does.Contain(option).And.Contain("does not exist"));
        Assert.That(stdout, Is.Empty, "nothing was replayed");
    }

    [Test]
    public void Bench_Plot_OnePngPerGroup()
    {
        var dir = PathOf("plots");
        var j = JsonOutputTests.Json(0, "bench", "--quick", "--only", "img", "--plot", dir, "--json");
        var pictures = j.GetProperty("plots").EnumerateArray().Select(p => p.GetString()!).ToList();
        Assert.That(pictures, Is.EqualTo(new[] { Path.Combine(dir, "img.png") }));
        int withRatio = j.GetProperty("results").EnumerateArray().Count(r => r.GetProperty("ratio").ValueKind == JsonValueKind.Number);
        AssertPng(pictures[0], BenchPlot.Width, BenchPlot.HeightFor(withRatio));
    }
}
