using System.Globalization;

namespace BlkTap.Trace;

/// <summary>How <see cref="FioIologExporter"/> writes a discard.</summary>
public enum FioDiscardMode
{
    /// <summary>As a <c>trim</c> line (fio 3.34 and later replay it; fio 3.33 logs "bad ddir: 2" and skips it).</summary>
    Trim,
    /// <summary>Leave discards out.</summary>
    Skip,
}

/// <summary>
/// Writes a trace as a fio iolog version 3 so that <c>fio --read_iolog=FILE --ioengine=psync</c>
/// replays it against a file or device. Stateless and thread-safe.
/// </summary>
/// <remarks>
/// <para>Mapping: Read → <c>read</c>; Write → <c>write</c>; WriteBarrier → <c>write</c> then
/// <c>datasync</c>; FlushDiskCache → <c>datasync</c>, preceded by a <c>write</c> of its data when
/// it carries some (so that data is durable too, as blkif asks); Discard →
/// <c>trim</c> or nothing (<see cref="FioDiscardMode"/>). Each session becomes a file: <c>add</c>
/// and <c>open</c> at its first record, <c>close</c> at the end.</para>
/// <para>NOTE: fio (iolog.c delay_since_ttime) treats a previous timestamp of 0 as "no previous
/// timestamp" and does not wait, so timestamps are written as 1 + submit time in microseconds:
/// the gaps between records are kept exactly (at microsecond resolution) and nothing is lost to
/// the quirk. fio 3.33 replays the differences as microsecond delays.</para>
/// </remarks>
public static class FioIologExporter
{
    /// <summary>Writes every record against one target file or device; returns the number of I/O lines written.</summary>
    public static long Export(IEnumerable<TraceRecord> records, TextWriter writer, string targetPath,
        FioDiscardMode discards = FioDiscardMode.Trim)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(targetPath);
        CheckName(targetPath);
        return Export(records, writer, _ => targetPath, discards);
    }

    /// <summary>
    /// Writes each session's records against the file <paramref name="targetForSession"/> gives it;
    /// sessions mapped to null are left out. Returns the number of I/O lines written.
    /// </summary>
    /// <exception cref="ArgumentException">A target name contains blanks (fio reads names with <c>%256s</c>) or is longer than 256 characters.</exception>
    public static long Export(IEnumerable<TraceRecord> records, TextWriter writer, Func<uint, string?> targetForSession,
        FioDiscardMode discards = FioDiscardMode.Trim)
    {
        ArgumentNullException.ThrowIfNull(records);
        ArgumentNullException.ThrowIfNull(writer);
        ArgumentNullException.ThrowIfNull(targetForSession);
        var ci = CultureInfo.InvariantCulture;
        var targets = new Dictionary<uint, string?>();
        var opened = new List<string>();
        writer.Write(FioIologImporter.Version3Line + "\n");
        long lines = 0;
        ulong lastUs = 1;
        foreach (var r in records)
        {
            if (!targets.TryGetValue(r.Session, out var target))
            {
                target = targetForSession(r.Session);
                if (target != null) CheckName(target);
                targets[r.Session] = target;
                if (target != null && !opened.Contains(target))
                {
                    opened.Add(target);
                    var t0 = 1 + r.SubmitNs / 1000;
                    writer.Write(string.Create(ci, $"{t0} {target} add\n{t0} {target} open\n"));
                }
            }
            if (target == null) continue;
            // Timestamps must not go backwards (fio then replays without delay); records are in submit order.
            var us = Math.Max(lastUs, 1 + r.SubmitNs / 1000);
            lastUs = us;
            var offset = r.Sector * 512;
            switch (r.Operation)
            {
                case BlkifOperation.Read:
                    writer.Write(string.Create(ci, $"{us} {target} read {offset} {r.Length}\n")); lines++; break;
                case BlkifOperation.Write:
                    writer.Write(string.Create(ci, $"{us} {target} write {offset} {r.Length}\n")); lines++; break;
                case BlkifOperation.WriteBarrier:
                    writer.Write(string.Create(ci, $"{us} {target} write {offset} {r.Length}\n{us} {target} datasync 0 0\n")); lines += 2; break;
                case BlkifOperation.FlushDiskCache:
                    if (r.Length > 0) { writer.Write(string.Create(ci, $"{us} {target} write {offset} {r.Length}\n")); lines++; }
                    writer.Write(string.Create(ci, $"{us} {target} datasync 0 0\n")); lines++; break;
                case BlkifOperation.Discard:
                    if (discards == FioDiscardMode.Trim) { writer.Write(string.Create(ci, $"{us} {target} trim {offset} {r.Length}\n")); lines++; }
                    break;
            }
        }
        foreach (var target in opened) writer.Write(string.Create(ci, $"{lastUs} {target} close\n"));
        return lines;
    }

    private static void CheckName(string target)
    {
        foreach (var c in target)
            if (char.IsWhiteSpace(c)) throw new ArgumentException($"fio iolog file names cannot contain blanks: '{target}'", nameof(target));
        if (target.Length > 256) throw new ArgumentException($"fio iolog file names are limited to 256 characters: '{target}'", nameof(target));
    }
}
