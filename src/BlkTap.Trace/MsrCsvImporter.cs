using System.Globalization;
using BlkTap.Trace.Internal;

namespace BlkTap.Trace;

/// <summary>
/// Imports SNIA MSR Cambridge block traces: CSV lines
/// <c>Timestamp,Hostname,DiskNumber,Type,Offset,Size,ResponseTime</c>. Stateless and thread-safe.
/// </summary>
/// <remarks>
/// NOTE: per the SNIA IOTTA MSR Cambridge trace description, Timestamp is a Windows FILETIME
/// (100 ns units since 1601) and ResponseTime is in the same 100 ns units; Offset and Size are
/// bytes; Type is Read or Write. Submit times are made relative to the first record; the
/// session is DiskNumber; an optional header line naming the columns is skipped. Offsets must
/// be multiples of 512 (a trace record addresses 512-byte sectors).
/// </remarks>
public sealed class MsrCsvImporter : ITraceImporter
{
    /// <summary>The shared instance.</summary>
    public static MsrCsvImporter Instance { get; } = new();

    /// <inheritdoc />
    public TraceFormat Format => TraceFormat.Msr;

    /// <inheritdoc />
    public IEnumerable<TraceRecord> Read(string path)
    {
        using var reader = LineSource.Open(path);
        foreach (var r in Read(reader, path)) yield return r;
    }

    /// <inheritdoc />
    public IEnumerable<TraceRecord> Read(TextReader reader, string sourceName)
    {
        ArgumentNullException.ThrowIfNull(reader);
        long lineNo = 0;
        ulong? baseTicks = null;
        string? line;
        while ((line = reader.ReadLine()) != null)
        {
            lineNo++;
            var span = line.AsSpan().Trim();
            if (span.IsEmpty) continue;
            if (baseTicks == null && span.StartsWith("Timestamp,", StringComparison.OrdinalIgnoreCase)) continue;
            var r = Parse(span, ref baseTicks, sourceName, lineNo);
            yield return r;
        }
    }

    private static ReadOnlySpan<char> Column(ref SpanTokenizer t, string name, string source, long lineNo) =>
        t.Next(out var field)
            ? field.Trim()
            : throw TraceFormatException.AtLine(source, lineNo, $"missing column {name} (expected Timestamp,Hostname,DiskNumber,Type,Offset,Size,ResponseTime)");

    private static TraceRecord Parse(ReadOnlySpan<char> line, ref ulong? baseTicks, string source, long lineNo)
    {
        var ci = CultureInfo.InvariantCulture;
        var t = new SpanTokenizer(line, ',');
        var ts = Column(ref t, "Timestamp", source, lineNo);
        if (!ulong.TryParse(ts, NumberStyles.None, ci, out var ticks)) throw Bad("Timestamp is not an unsigned integer (Windows FILETIME)");
        Column(ref t, "Hostname", source, lineNo);
        var disk = Column(ref t, "DiskNumber", source, lineNo);
        if (!uint.TryParse(disk, NumberStyles.None, ci, out var session)) throw Bad("DiskNumber is not an unsigned integer");
        var type = Column(ref t, "Type", source, lineNo);
        BlkifOperation op;
        if (type.Equals("Read", StringComparison.OrdinalIgnoreCase)) op = BlkifOperation.Read;
        else if (type.Equals("Write", StringComparison.OrdinalIgnoreCase)) op = BlkifOperation.Write;
        else throw Bad($"Type '{type}' is neither Read nor Write");
        var off = Column(ref t, "Offset", source, lineNo);
        if (!ulong.TryParse(off, NumberStyles.None, ci, out var offset)) throw Bad("Offset is not an unsigned integer");
        if (offset % 512 != 0) throw Bad($"Offset {offset} is not a multiple of 512");
        var sz = Column(ref t, "Size", source, lineNo);
        if (!uint.TryParse(sz, NumberStyles.None, ci, out var size)) throw Bad("Size is not an unsigned 32-bit integer");
        var rt = Column(ref t, "ResponseTime", source, lineNo);
        if (!ulong.TryParse(rt, NumberStyles.None, ci, out var response)) throw Bad("ResponseTime is not an unsigned integer");
        if (t.Next(out _)) throw Bad("more than 7 columns (Timestamp,Hostname,DiskNumber,Type,Offset,Size,ResponseTime)");
        baseTicks ??= ticks;
        if (ticks < baseTicks.Value) throw Bad($"Timestamp {ticks} is earlier than the first record's {baseTicks.Value}");
        ulong submit, latency;
        try
        {
            submit = checked((ticks - baseTicks.Value) * 100);
            latency = checked(response * 100);
            _ = checked(submit + latency);
        }
        catch (OverflowException) { throw Bad("time overflows 64-bit nanoseconds"); }
        return new TraceRecord(submit, submit + latency, session, op, offset / 512, size, BlkifStatus.Okay);

        TraceFormatException Bad(string problem) => TraceFormatException.AtLine(source, lineNo, problem);
    }
}
