using System.Globalization;
using BlkTap.Trace.Internal;

namespace BlkTap.Trace;

/// <summary>
/// The text form of a trace: a first line <c># blktap-trace text v1</c>, then one line per record
/// with the columns <c>submit_ns complete_ns session op sector length status hash</c>
/// (docs/trace-format.md, "Text form"). Stateless and thread-safe.
/// </summary>
public sealed class TraceText : ITraceImporter
{
    /// <summary>The first line of every text trace.</summary>
    public const string FirstLine = "# blktap-trace text v1";
    /// <summary>The column line written after <see cref="FirstLine"/>.</summary>
    public const string ColumnsLine = "# submit_ns complete_ns session op sector length status hash";

    /// <summary>The shared instance.</summary>
    public static TraceText Instance { get; } = new();

    /// <inheritdoc />
    public TraceFormat Format => TraceFormat.Text;

    /// <summary>Writes <paramref name="records"/> in text form; returns how many were written.</summary>
    public static long Write(IEnumerable<TraceRecord> records, TextWriter writer)
    {
        ArgumentNullException.ThrowIfNull(records);
        ArgumentNullException.ThrowIfNull(writer);
        writer.Write(FirstLine + "\n" + ColumnsLine + "\n");
        long n = 0;
        Span<char> buf = stackalloc char[160];
        foreach (var r in records)
        {
            var line = Format1(r, buf);
            writer.Write(buf[..line]);
            n++;
        }
        return n;
    }

    private static int Format1(in TraceRecord r, Span<char> buf)
    {
        var ci = CultureInfo.InvariantCulture;
        var ok = buf.TryWrite(ci, $"{r.SubmitNs} ", out var n);
        var pos = n;
        ok &= r.IsCompleted ? buf[pos..].TryWrite(ci, $"{r.CompleteNs} ", out n) : buf[pos..].TryWrite(ci, $"- ", out n);
        pos += n;
        ok &= buf[pos..].TryWrite(ci, $"{r.Session} {OpNames.Name(r.Operation)} {r.Sector} {r.Length} {OpNames.Name(r.Status)} ", out n);
        pos += n;
        ok &= r.HasDataHash ? buf[pos..].TryWrite(ci, $"{r.DataHash:x16}\n", out n) : buf[pos..].TryWrite(ci, $"-\n", out n);
        pos += n;
        if (!ok) throw new InvalidOperationException("text line buffer too small");
        return pos;
    }

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
        string? line;
        while ((line = reader.ReadLine()) != null)
        {
            lineNo++;
            if (lineNo == 1)
            {
                if (line != FirstLine) throw TraceFormatException.AtLine(sourceName, 1, $"not a text trace: first line must be \"{FirstLine}\"");
                continue;
            }
            var span = line.AsSpan().Trim();
            if (span.IsEmpty || span[0] == '#') continue;
            yield return ParseLine(span, sourceName, lineNo);
        }
    }

    private static TraceRecord ParseLine(ReadOnlySpan<char> line, string source, long lineNo)
    {
        var t = new SpanTokenizer(line);
        var ci = CultureInfo.InvariantCulture;
        if (!t.Next(out var tok) || !ulong.TryParse(tok, NumberStyles.None, ci, out var submit)) throw Bad("submit_ns is not an unsigned integer");
        if (!t.Next(out tok)) throw Bad("missing complete_ns");
        var completed = tok is not "-";
        ulong complete = submit;
        if (completed && !ulong.TryParse(tok, NumberStyles.None, ci, out complete)) throw Bad("complete_ns is neither an unsigned integer nor '-'");
        if (!t.Next(out tok) || !uint.TryParse(tok, NumberStyles.None, ci, out var session)) throw Bad("session is not an unsigned 32-bit integer");
        if (!t.Next(out tok) || !OpNames.TryParseOp(tok, out var op)) throw Bad($"unknown op '{tok}' (read, write, barrier, flush, discard)");
        if (!t.Next(out tok) || !ulong.TryParse(tok, NumberStyles.None, ci, out var sector)) throw Bad("sector is not an unsigned integer");
        if (!t.Next(out tok) || !uint.TryParse(tok, NumberStyles.None, ci, out var length)) throw Bad("length is not an unsigned 32-bit integer");
        if (!t.Next(out tok) || !OpNames.TryParseStatus(tok, out var status)) throw Bad($"unknown status '{tok}' (ok, error, eopnotsupp)");
        if (!t.Next(out tok)) throw Bad("missing hash column");
        ulong? hash = null;
        if (tok is not "-")
        {
            if (tok.Length != 16 || !ulong.TryParse(tok, NumberStyles.AllowHexSpecifier, ci, out var h)) throw Bad("hash is neither 16 hex digits nor '-'");
            hash = h;
        }
        if (t.Next(out _)) throw Bad("too many columns");
        return new TraceRecord(submit, complete, session, op, sector, length, status, hash, completed);

        TraceFormatException Bad(string problem) => TraceFormatException.AtLine(source, lineNo, problem);
    }
}
