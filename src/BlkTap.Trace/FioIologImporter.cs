using System.Globalization;
using BlkTap.Trace.Internal;

namespace BlkTap.Trace;

/// <summary>
/// Imports fio iologs, version 2 (<c>fio version 2 iolog</c>; lines <c>filename action</c> and
/// <c>filename action offset length</c>) and version 3 (<c>fio version 3 iolog</c>; every line
/// prefixed by a timestamp). Stateless and thread-safe.
/// </summary>
/// <remarks>
/// <para>NOTE: grammar from fio's HOWTO ("Trace file format v2/v3") and iolog.c read_iolog:
/// file actions add/open/close; I/O actions read, write, trim, sync, datasync, and (v2 only) wait.
/// Offsets and lengths are bytes. fio parses the filename with <c>%256s</c>, so names hold no blanks.</para>
/// <para>NOTE: v3 timestamps are microseconds since the start of the run: fio 3.33 writes them with
/// utime_since_now and replays their differences as microsecond delays (checked against the real
/// fio; the HOWTO gives no unit). v2 <c>wait N</c>: the HOWTO says "microseconds relative to the
/// previous wait", but fio's read_iolog_get sleeps until N milliseconds after the job started; we
/// follow the code, so N sets the clock to N ms.</para>
/// <para>Sessions number the files in order of their <c>add</c> line, from 0; an I/O on a file never
/// added is an error. sync and datasync become a <see cref="BlkifOperation.FlushDiskCache"/> without
/// data, trim a <see cref="BlkifOperation.Discard"/>. An iolog has no completions: every record has
/// <see cref="TraceRecordFlags.NoCompletion"/> and status Okay. Offsets must be multiples of 512.</para>
/// </remarks>
public sealed class FioIologImporter : ITraceImporter
{
    /// <summary>First line of a version 2 iolog.</summary>
    public const string Version2Line = "fio version 2 iolog";
    /// <summary>First line of a version 3 iolog.</summary>
    public const string Version3Line = "fio version 3 iolog";

    /// <summary>The shared instance.</summary>
    public static FioIologImporter Instance { get; } = new();

    /// <inheritdoc />
    public TraceFormat Format => TraceFormat.Fio;

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
        var first = reader.ReadLine();
        int version;
        // NOTE: fio compares the first line with strncmp against the version string (iolog.c init_iolog_read).
        if (first != null && first.StartsWith(Version2Line, StringComparison.Ordinal)) version = 2;
        else if (first != null && first.StartsWith(Version3Line, StringComparison.Ordinal)) version = 3;
        else throw TraceFormatException.AtLine(sourceName, 1, $"not a fio iolog: first line must be \"{Version2Line}\" or \"{Version3Line}\" (version 1 logs are not supported, as in fio)");
        var files = new Dictionary<string, uint>(StringComparer.Ordinal);
        long lineNo = 1;
        ulong clockNs = 0;
        string? line;
        while ((line = reader.ReadLine()) != null)
        {
            lineNo++;
            var span = line.AsSpan().Trim();
            if (span.IsEmpty) continue;
            if (ParseLine(span, version, files, ref clockNs, sourceName, lineNo, out var record)) yield return record;
        }
    }

    private static bool ParseLine(ReadOnlySpan<char> line, int version, Dictionary<string, uint> files, ref ulong clockNs,
        string source, long lineNo, out TraceRecord record)
    {
        var ci = CultureInfo.InvariantCulture;
        record = default;
        var t = new SpanTokenizer(line);
        if (version == 3)
        {
            if (!t.Next(out var ts) || !ulong.TryParse(ts, NumberStyles.None, ci, out var us)) throw Bad("timestamp is not an unsigned integer (microseconds)");
            if (us > ulong.MaxValue / 1000) throw Bad("timestamp overflows 64-bit nanoseconds");
            clockNs = us * 1000;
        }
        if (!t.Next(out var file)) throw Bad("missing filename");
        if (!t.Next(out var action)) throw Bad($"missing action after filename '{file}'");
        var hasOffset = t.Next(out var offTok);
        ReadOnlySpan<char> lenTok = default;
        if (hasOffset && !t.Next(out lenTok)) throw Bad($"action '{action}' has an offset but no length");
        if (t.Next(out _)) throw Bad("too many fields");

        if (action is "add" or "open" or "close")
        {
            if (hasOffset) throw Bad($"file action '{action}' takes no offset/length");
            if (action is "add")
            {
                var lookup = files.GetAlternateLookup<ReadOnlySpan<char>>();
                if (!lookup.ContainsKey(file)) lookup[file] = (uint)files.Count;
            }
            else if (!files.GetAlternateLookup<ReadOnlySpan<char>>().ContainsKey(file)) throw Bad($"file '{file}' was not added before '{action}'");
            return false;
        }

        BlkifOperation op;
        switch (action)
        {
            case "read": op = BlkifOperation.Read; break;
            case "write": op = BlkifOperation.Write; break;
            case "trim": op = BlkifOperation.Discard; break;
            case "sync":
            case "datasync": op = BlkifOperation.FlushDiskCache; break;
            case "wait":
                if (version == 3) throw Bad("'wait' is not allowed in a version 3 iolog (timestamps replace it)");
                if (!hasOffset || !ulong.TryParse(offTok, NumberStyles.None, ci, out var ms)) throw Bad("wait needs a numeric delay");
                if (ms > ulong.MaxValue / 1_000_000) throw Bad("wait delay overflows 64-bit nanoseconds");
                clockNs = Math.Max(clockNs, ms * 1_000_000);
                return false;
            default:
                throw Bad($"unknown action '{action}' (add, open, close, read, write, trim, sync, datasync{(version == 2 ? ", wait" : "")})");
        }
        if (!files.GetAlternateLookup<ReadOnlySpan<char>>().TryGetValue(file, out var session)) throw Bad($"file '{file}' was not added before '{action}'");
        ulong offset = 0;
        uint length = 0;
        if (op == BlkifOperation.FlushDiskCache)
        {
            // fio writes "sync 0 0"; the offset and length mean nothing for a sync.
            if (hasOffset && (!ulong.TryParse(offTok, NumberStyles.None, ci, out _) || !uint.TryParse(lenTok, NumberStyles.None, ci, out _)))
                throw Bad("sync offset/length are not numbers");
        }
        else
        {
            if (!hasOffset) throw Bad($"action '{action}' needs an offset and a length");
            if (!ulong.TryParse(offTok, NumberStyles.None, ci, out offset)) throw Bad($"offset '{offTok}' is not an unsigned integer");
            if (!uint.TryParse(lenTok, NumberStyles.None, ci, out length)) throw Bad($"length '{lenTok}' is not an unsigned 32-bit integer");
            if (offset % 512 != 0) throw Bad($"offset {offset} is not a multiple of 512");
        }
        record = new TraceRecord(clockNs, clockNs, session, op, offset / 512, length, BlkifStatus.Okay, null, completed: false);
        return true;

        TraceFormatException Bad(string problem) => TraceFormatException.AtLine(source, lineNo, problem);
    }
}
