using System.Globalization;
using BlkTap.Trace.Internal;

namespace BlkTap.Trace;

/// <summary>
/// Imports the default text output of <c>blkparse</c> (no <c>-f</c>/<c>-F</c> format), for example
/// <c>  8,0    3        1     0.000000000  1234  Q   W 1000 + 8 [dd]</c>. Stateless and thread-safe.
/// </summary>
/// <remarks>
/// <para>A request is its Q (queued) event, the submit time, matched with its C (complete) event,
/// the completion time. A C is matched to the oldest pending Q of the same device, direction and
/// exactly the same sector range; failing that, it completes every pending Q whose range it
/// covers (the Qs were merged into one request, M/F events) or counts towards the one Q whose
/// range contains it (the Q was split, X events). Every other action (G, I, D, M, F, P, U, A, X,
/// m, ...) is ignored, and so is the summary blkparse prints at the end (from the first
/// <c>CPUn (</c> or <c>Total (</c> line on).</para>
/// <para>Operations come from the RWBS field: D discard, W write, R read, an F prefix (preflush)
/// on a write makes it a <see cref="BlkifOperation.FlushDiskCache"/> with data, a Q with no sectors
/// and an F prefix (FN, FWS with no range) is a flush without data. A C with a nonzero error is
/// <see cref="BlkifStatus.Error"/> (<see cref="BlkifStatus.NotSupported"/> for EOPNOTSUPP, 95).</para>
/// <para>Records come out in Q order. Sessions number the devices (major,minor) in order of first
/// appearance, from 0. A Q that never completes is emitted with <see cref="TraceRecordFlags.NoCompletion"/>,
/// at the end of the input or once more than <see cref="MaxOutstanding"/> requests are pending.
/// SCSI passthrough (PC) requests and C events without a Q are skipped.</para>
/// </remarks>
public sealed class BlkparseImporter : ITraceImporter
{
    /// <summary>An importer with the default <see cref="MaxOutstanding"/> (65536).</summary>
    public static BlkparseImporter Instance { get; } = new();

    /// <summary>Creates an importer.</summary>
    /// <param name="maxOutstanding">Pending (queued, not completed) requests kept before the oldest is given up as never completed.</param>
    public BlkparseImporter(int maxOutstanding = 65536)
    {
        if (maxOutstanding < 1) throw new ArgumentOutOfRangeException(nameof(maxOutstanding), "must be at least 1");
        MaxOutstanding = maxOutstanding;
    }

    /// <summary>Pending requests kept before the oldest is emitted as never completed.</summary>
    public int MaxOutstanding { get; }

    /// <inheritdoc />
    public TraceFormat Format => TraceFormat.Blkparse;

    /// <inheritdoc />
    public IEnumerable<TraceRecord> Read(string path)
    {
        using var reader = LineSource.Open(path);
        foreach (var r in Read(reader, path)) yield return r;
    }

    private enum Kind : byte { Read, Write, Discard, Flush }

    private readonly record struct Key(uint Session, Kind Kind, ulong Sector, uint Sectors);

    private sealed class Pending
    {
        public Key Key;
        public ulong SubmitNs;
        public ulong CompleteNs;
        public BlkifOperation Op;
        public uint RemainingSectors;
        public BlkifStatus Status;
        public bool Done;
        public bool Abandoned;
    }

    /// <summary>Parsed fixed columns of a blkparse event line.</summary>
    private ref struct Event
    {
        public uint Session;
        public ulong TimeNs;
        public char Action;
        public bool ActionIsSingle;
        public Kind Kind;
        public bool Preflush;
        public bool KindIsNone;
        public ReadOnlySpan<char> Rest;
    }

    /// <inheritdoc />
    public IEnumerable<TraceRecord> Read(TextReader reader, string sourceName)
    {
        ArgumentNullException.ThrowIfNull(reader);
        var devices = new List<(uint Major, uint Minor)>();
        var byKey = new Dictionary<Key, List<Pending>>();
        var order = new Queue<Pending>();
        long lineNo = 0;
        var summary = false;
        string? line;
        while ((line = reader.ReadLine()) != null)
        {
            lineNo++;
            if (summary) continue;
            var span = line.AsSpan().Trim();
            if (span.IsEmpty) continue;
            if (IsSummaryStart(span)) { summary = true; continue; }
            var ev = ParseHeader(span, devices, sourceName, lineNo);
            if (!ev.ActionIsSingle || (ev.Action != 'Q' && ev.Action != 'C')) continue;
            if (ev.Action == 'Q')
            {
                if (!ParseRange(ev.Rest, out var sector, out var sectors, out var isPassthrough, sourceName, lineNo) || isPassthrough) continue;
                Kind kind;
                BlkifOperation op;
                if (sectors == 0)
                {
                    if (!ev.Preflush) continue; // an empty non-flush request carries nothing to replay
                    kind = Kind.Flush; op = BlkifOperation.FlushDiskCache; sector = 0;
                }
                else
                {
                    if (ev.KindIsNone) continue; // N with sectors: nothing a block device replays
                    kind = ev.Kind;
                    op = kind switch
                    {
                        Kind.Discard => BlkifOperation.Discard,
                        Kind.Write => ev.Preflush ? BlkifOperation.FlushDiskCache : BlkifOperation.Write,
                        _ => BlkifOperation.Read,
                    };
                }
                if (sectors > uint.MaxValue / 512) throw TraceFormatException.AtLine(sourceName, lineNo, $"request of {sectors} sectors is too long for a trace record");
                var p = new Pending
                {
                    Key = new Key(ev.Session, kind, sector, sectors), SubmitNs = ev.TimeNs, Op = op, RemainingSectors = sectors,
                };
                if (!byKey.TryGetValue(p.Key, out var list)) byKey[p.Key] = list = new List<Pending>(1);
                list.Add(p);
                order.Enqueue(p);
                if (order.Count > MaxOutstanding) AbandonHead(order, byKey);
            }
            else
            {
                if (!ParseCompletion(ev.Rest, out var sector, out var sectors, out var error, sourceName, lineNo)) continue;
                var kind = sectors == 0 ? Kind.Flush : ev.Kind;
                if (sectors != 0 && ev.KindIsNone) continue;
                var status = error == 0 ? BlkifStatus.Okay : (error is 95 or -95 ? BlkifStatus.NotSupported : BlkifStatus.Error);
                Complete(new Key(ev.Session, kind, kind == Kind.Flush ? 0 : sector, sectors), ev.TimeNs, status, byKey, order);
            }
            while (order.Count > 0 && (order.Peek().Done || order.Peek().Abandoned))
            {
                var head = order.Dequeue();
                yield return ToRecord(head);
            }
        }
        while (order.Count > 0) yield return ToRecord(order.Dequeue());
    }

    private static TraceRecord ToRecord(Pending p) =>
        new(p.SubmitNs, p.Done ? p.CompleteNs : p.SubmitNs, p.Key.Session, p.Op, p.Key.Sector, p.Key.Sectors * 512u,
            p.Done ? p.Status : BlkifStatus.Okay, null, p.Done);

    private static void AbandonHead(Queue<Pending> order, Dictionary<Key, List<Pending>> byKey)
    {
        foreach (var p in order)
        {
            if (p.Done || p.Abandoned) continue;
            p.Abandoned = true;
            Remove(byKey, p);
            return;
        }
    }

    private static void Remove(Dictionary<Key, List<Pending>> byKey, Pending p)
    {
        if (!byKey.TryGetValue(p.Key, out var list)) return;
        list.Remove(p);
        if (list.Count == 0) byKey.Remove(p.Key);
    }

    private static void Complete(Key key, ulong timeNs, BlkifStatus status, Dictionary<Key, List<Pending>> byKey, Queue<Pending> order)
    {
        if (byKey.TryGetValue(key, out var list))
        {
            var p = list[0];
            list.RemoveAt(0);
            if (list.Count == 0) byKey.Remove(key);
            Finish(p, timeNs, status);
            return;
        }
        if (key.Kind == Kind.Flush) return;
        // Merged Qs (one C covers several) or a split Q (several Cs cover one).
        var end = key.Sector + key.Sectors;
        foreach (var p in order)
        {
            if (p.Done || p.Abandoned || p.Key.Session != key.Session || p.Key.Kind != key.Kind) continue;
            var pEnd = p.Key.Sector + p.Key.Sectors;
            if (p.Key.Sector >= key.Sector && pEnd <= end)
            {
                Remove(byKey, p);
                Finish(p, timeNs, status);
            }
            else if (key.Sector >= p.Key.Sector && end <= pEnd)
            {
                p.RemainingSectors = p.RemainingSectors > key.Sectors ? p.RemainingSectors - key.Sectors : 0;
                if (status != BlkifStatus.Okay) p.Status = status;
                if (p.RemainingSectors == 0)
                {
                    Remove(byKey, p);
                    Finish(p, timeNs, p.Status);
                }
                return;
            }
        }
    }

    private static void Finish(Pending p, ulong timeNs, BlkifStatus status)
    {
        p.Done = true;
        p.CompleteNs = Math.Max(timeNs, p.SubmitNs);
        if (p.Status == BlkifStatus.Okay) p.Status = status;
    }

    private static bool IsSummaryStart(ReadOnlySpan<char> line)
    {
        // NOTE: blkparse (blkparse.c, show_device_and_cpu_stats) ends its output with per-CPU and
        // per-device summaries headed "CPU<n> (<dev>):" and "Total (<dev>):", then "Throughput",
        // "Events" and "Skips" lines.
        if (line.StartsWith("Total (")) return true;
        if (!line.StartsWith("CPU")) return false;
        var i = 3;
        while (i < line.Length && char.IsAsciiDigit(line[i])) i++;
        return i > 3 && line[i..].StartsWith(" (");
    }

    private static Event ParseHeader(ReadOnlySpan<char> line, List<(uint, uint)> devices, string source, long lineNo)
    {
        // NOTE: blkparse_fmt.c process_default: "%3d,%-3d %2d %8d %5d.%09lu %5u %2s %3s " =
        // major,minor cpu sequence seconds.nanoseconds pid action rwbs, then the action's fields.
        var t = new SpanTokenizer(line);
        var ev = new Event();
        if (!t.Next(out var dev)) throw Bad("empty line");
        var comma = dev.IndexOf(',');
        if (comma <= 0 || !uint.TryParse(dev[..comma], NumberStyles.None, CultureInfo.InvariantCulture, out var major)
            || !uint.TryParse(dev[(comma + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out var minor))
            throw Bad($"not a blkparse event line: '{Short(line)}' (expected MAJOR,MINOR first)");
        if (!t.Next(out var cpu) || !uint.TryParse(cpu, NumberStyles.None, CultureInfo.InvariantCulture, out _)) throw Bad("CPU column is not a number");
        if (!t.Next(out var seq) || !long.TryParse(seq, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out _)) throw Bad("sequence column is not a number");
        if (!t.Next(out var time) || !TryParseSeconds(time, out ev.TimeNs)) throw Bad($"time column '{time}' is not SECONDS.NANOSECONDS");
        if (!t.Next(out var pid) || !uint.TryParse(pid, NumberStyles.None, CultureInfo.InvariantCulture, out _)) throw Bad("pid column is not a number");
        if (!t.Next(out var action)) throw Bad("missing action column");
        ev.Action = action[0];
        ev.ActionIsSingle = action.Length == 1;
        if (!t.Next(out var rwbs)) throw Bad("missing RWBS column");
        // NOTE: blkparse_fmt.c fill_rwbs: optional 'F' (preflush), then one of D, W, R, N, then
        // optional F (FUA), A (readahead), S (sync), M (meta); newer kernels may add E, ...
        var k = 0;
        if (rwbs.Length > 1 && rwbs[0] == 'F' && rwbs[1] is 'D' or 'W' or 'R' or 'N') { ev.Preflush = true; k = 1; }
        switch (rwbs[k])
        {
            case 'D': ev.Kind = Kind.Discard; break;
            case 'W': ev.Kind = Kind.Write; break;
            case 'R': ev.Kind = Kind.Read; break;
            case 'N': ev.KindIsNone = true; break;
            default:
                if (ev.ActionIsSingle && ev.Action is 'Q' or 'C') throw Bad($"unknown RWBS '{rwbs}'");
                break;
        }
        ev.Rest = t.Rest;
        var index = devices.IndexOf((major, minor));
        if (index < 0) { devices.Add((major, minor)); index = devices.Count - 1; }
        ev.Session = (uint)index;
        return ev;

        TraceFormatException Bad(string problem) => TraceFormatException.AtLine(source, lineNo, problem);
    }

    private static string Short(ReadOnlySpan<char> s) => s.Length <= 60 ? s.ToString() : s[..60].ToString() + "...";

    private static bool TryParseSeconds(ReadOnlySpan<char> s, out ulong ns)
    {
        ns = 0;
        var dot = s.IndexOf('.');
        if (dot <= 0 || dot == s.Length - 1) return false;
        if (!ulong.TryParse(s[..dot], NumberStyles.None, CultureInfo.InvariantCulture, out var sec)) return false;
        var frac = s[(dot + 1)..];
        if (frac.Length > 9 || !ulong.TryParse(frac, NumberStyles.None, CultureInfo.InvariantCulture, out var f)) return false;
        for (var i = frac.Length; i < 9; i++) f *= 10;
        if (sec > (ulong.MaxValue - f) / 1_000_000_000UL) return false;
        ns = sec * 1_000_000_000UL + f;
        return true;
    }

    // Q: "SECTOR + N [comm]", "SECTOR + N (elapsed) [comm]", "[comm]", "(elapsed) [comm]";
    // PC: "BYTES (cdb) [comm]" / "BYTES [comm]".
    private static bool ParseRange(ReadOnlySpan<char> rest, out ulong sector, out uint sectors, out bool passthrough, string source, long lineNo)
    {
        sector = 0; sectors = 0; passthrough = false;
        var t = new SpanTokenizer(rest);
        if (!t.Next(out var first)) throw TraceFormatException.AtLine(source, lineNo, "Q event without fields");
        if (first[0] is '[' or '(') return true;
        if (!ulong.TryParse(first, NumberStyles.None, CultureInfo.InvariantCulture, out sector))
            throw TraceFormatException.AtLine(source, lineNo, $"Q sector '{first}' is not a number");
        if (!t.Next(out var plus) || plus is not "+") { passthrough = true; return true; }
        if (!t.Next(out var n) || !uint.TryParse(n, NumberStyles.None, CultureInfo.InvariantCulture, out sectors))
            throw TraceFormatException.AtLine(source, lineNo, "Q sector count is not a number");
        return true;
    }

    // C: "SECTOR + N [err]", "SECTOR + N (elapsed) [err]", "SECTOR [err]", "SECTOR (elapsed) [err]"; PC: "(cdb) [err]", "[err]".
    private static bool ParseCompletion(ReadOnlySpan<char> rest, out ulong sector, out uint sectors, out int error, string source, long lineNo)
    {
        sector = 0; sectors = 0; error = 0;
        var t = new SpanTokenizer(rest);
        if (!t.Next(out var first)) throw TraceFormatException.AtLine(source, lineNo, "C event without fields");
        if (first[0] is '[' or '(') return false; // passthrough
        if (!ulong.TryParse(first, NumberStyles.None, CultureInfo.InvariantCulture, out sector))
            throw TraceFormatException.AtLine(source, lineNo, $"C sector '{first}' is not a number");
        if (!t.Next(out var tok)) throw TraceFormatException.AtLine(source, lineNo, "C event without error field");
        if (tok is "+")
        {
            if (!t.Next(out var n) || !uint.TryParse(n, NumberStyles.None, CultureInfo.InvariantCulture, out sectors))
                throw TraceFormatException.AtLine(source, lineNo, "C sector count is not a number");
            if (!t.Next(out tok)) throw TraceFormatException.AtLine(source, lineNo, "C event without error field");
        }
        if (tok[0] == '(' && !t.Next(out tok)) throw TraceFormatException.AtLine(source, lineNo, "C event without error field");
        if (tok.Length < 3 || tok[0] != '[' || tok[^1] != ']'
            || !int.TryParse(tok[1..^1], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out error))
            throw TraceFormatException.AtLine(source, lineNo, $"C error field '{tok}' is not [NUMBER]");
        return true;
    }
}
