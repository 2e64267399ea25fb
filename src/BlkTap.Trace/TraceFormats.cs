using System.Globalization;
using System.Text;
using BlkTap.Trace.Internal;

namespace BlkTap.Trace;

/// <summary>
/// Entry points over every trace format: detection from a file's first bytes, and streaming
/// reads of any format. Stateless and thread-safe.
/// </summary>
public static class TraceFormats
{
    private const int SniffBytes = 4096;

    /// <summary>
    /// Detects the format of the file at <paramref name="path"/> from its first bytes: the native
    /// magic, the text-form first line, a fio version line, a blkparse event line, or an MSR CSV
    /// line (or its column header).
    /// </summary>
    /// <exception cref="TraceFormatException">The file is missing, empty or in no known format.</exception>
    public static TraceFormat Detect(string path)
    {
        byte[] head;
        int n;
        try
        {
            using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            head = new byte[SniffBytes];
            n = 0;
            while (n < head.Length)
            {
                var got = fs.Read(head, n, head.Length - n);
                if (got == 0) break;
                n += got;
            }
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw TraceFormatException.ForFile(path, "file not found");
        }
        return Detect(head.AsSpan(0, n), path);
    }

    /// <summary>Detects the format from the first bytes of a trace; <paramref name="sourceName"/> names it in errors.</summary>
    /// <exception cref="TraceFormatException">No known format.</exception>
    public static TraceFormat Detect(ReadOnlySpan<byte> head, string sourceName)
    {
        if (head.IsEmpty) throw TraceFormatException.ForFile(sourceName, "empty file: cannot detect the trace format");
        if (head.StartsWith(NativeLayout.HeaderMagic)) return TraceFormat.Native;
        var text = Encoding.UTF8.GetString(head);
        if (text.Length > 0 && text[0] == '\uFEFF') text = text[1..];
        foreach (var raw in text.Split('\n'))
        {
            var line = raw.AsSpan().Trim();
            if (line.IsEmpty) continue;
            if (line.StartsWith("# blktap-trace text", StringComparison.Ordinal)) return TraceFormat.Text;
            if (line.StartsWith("fio version ", StringComparison.Ordinal)) return TraceFormat.Fio;
            if (LooksLikeBlkparse(line)) return TraceFormat.Blkparse;
            if (LooksLikeMsr(line)) return TraceFormat.Msr;
            break;
        }
        throw TraceFormatException.ForFile(sourceName,
            "unrecognised trace format (expected a native trace, a text trace, blkparse output, MSR Cambridge CSV or a fio iolog v2/v3)");
    }

    private static bool LooksLikeBlkparse(ReadOnlySpan<char> line)
    {
        var t = new SpanTokenizer(line);
        if (!t.Next(out var dev)) return false;
        var comma = dev.IndexOf(',');
        if (comma <= 0 || !uint.TryParse(dev[..comma], NumberStyles.None, CultureInfo.InvariantCulture, out _)
            || !uint.TryParse(dev[(comma + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out _)) return false;
        if (!t.Next(out var cpu) || !uint.TryParse(cpu, NumberStyles.None, CultureInfo.InvariantCulture, out _)) return false;
        if (!t.Next(out var seq) || !long.TryParse(seq, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out _)) return false;
        return t.Next(out var time) && time.IndexOf('.') > 0
            && decimal.TryParse(time, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out _);
    }

    private static bool LooksLikeMsr(ReadOnlySpan<char> line)
    {
        if (line.StartsWith("Timestamp,Hostname,DiskNumber", StringComparison.OrdinalIgnoreCase)) return true;
        var t = new SpanTokenizer(line, ',');
        var i = 0;
        while (t.Next(out var field))
        {
            field = field.Trim();
            var ok = i switch
            {
                0 or 2 or 4 or 5 or 6 => ulong.TryParse(field, NumberStyles.None, CultureInfo.InvariantCulture, out _),
                3 => field.Equals("Read", StringComparison.OrdinalIgnoreCase) || field.Equals("Write", StringComparison.OrdinalIgnoreCase),
                _ => true,
            };
            if (!ok) return false;
            i++;
        }
        return i == 7;
    }

    /// <summary>The importer for a text format (everything but <see cref="TraceFormat.Native"/>).</summary>
    /// <exception cref="ArgumentException">The format is <see cref="TraceFormat.Native"/> (use <see cref="TraceReader"/>).</exception>
    public static ITraceImporter Importer(TraceFormat format) => format switch
    {
        TraceFormat.Text => TraceText.Instance,
        TraceFormat.Blkparse => BlkparseImporter.Instance,
        TraceFormat.Msr => MsrCsvImporter.Instance,
        TraceFormat.Fio => FioIologImporter.Instance,
        _ => throw new ArgumentException($"{format} is not a text format; read it with TraceReader", nameof(format)),
    };

    /// <summary>
    /// Streams the records of the file at <paramref name="path"/> in <paramref name="format"/>, or
    /// in the detected format when it is null. Errors surface as <see cref="TraceFormatException"/>.
    /// </summary>
    public static IEnumerable<TraceRecord> Read(string path, TraceFormat? format = null)
    {
        var f = format ?? Detect(path);
        if (f == TraceFormat.Native)
        {
            if (!File.Exists(path)) throw TraceFormatException.ForFile(path, "file not found");
            return TraceReader.ReadFile(path);
        }
        return Importer(f).Read(path);
    }
}
