using BlkTap.Trace;
using HdrHistogram;

namespace BlkTap.Cli.Plots;

/// <summary>
/// <c>blktap replay --hdr-log FILE</c>: the replay's latency histograms in HdrHistogram's log format (readable by
/// <c>HistogramLogReader</c>, HdrHistogram's HistogramLogProcessor and plotters), one histogram per operation that
/// completed anything, tagged with the operation's name (<c>Tag=read</c>...), values in nanoseconds, stamped with the
/// replay's start and end.
/// </summary>
/// <remarks>Threading: stateless; call after the replay.</remarks>
internal static class ReplayHdrLog
{
    /// <summary>Writes the log to <paramref name="path"/> (replaced).</summary>
    public static void Save(string path, ReplayStatistics statistics, DateTime startedUtc, TimeSpan elapsed)
    {
        long start = new DateTimeOffset(startedUtc).ToUnixTimeMilliseconds();
        var histograms = new List<HistogramBase>();
        for (int op = 0; op < ReplayStatistics.OperationNames.Count; op++)
        {
            if (statistics.Completed[op] == 0) continue;
            var h = statistics.LatencyHistogram(op);
            h.Tag = ReplayStatistics.OperationNames[op];
            h.StartTimeStamp = start;
            h.EndTimeStamp = start + (long)elapsed.TotalMilliseconds;
            histograms.Add(h);
        }
        // NOTE: HdrHistogram.NET's HistogramLogWriter writes UTF-16 with a byte order mark; the log format (HdrHistogram's
        // Java and C implementations, HistogramLogProcessor) is ASCII text, so the log is written to memory and re-encoded.
        var memory = new MemoryStream();
        using (var writer = new HistogramLogWriter(memory)) writer.Write(startedUtc, histograms.ToArray());
        var text = DecodeAny(memory.ToArray());
        File.WriteAllText(path, text, new System.Text.UTF8Encoding(false));
    }

    private static string DecodeAny(byte[] bytes)
    {
        using var reader = new StreamReader(new MemoryStream(bytes), System.Text.Encoding.UTF8, detectEncodingFromByteOrderMarks: true);
        return reader.ReadToEnd();
    }
}
