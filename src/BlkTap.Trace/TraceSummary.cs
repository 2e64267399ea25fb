namespace BlkTap.Trace;

/// <summary>
/// Figures of a whole trace, gathered in one streaming pass: record count, sessions in order of
/// first appearance, operation mix, time span, the highest sector reached, and the first record a
/// replay could not issue. What <c>blktap trace info</c> prints and what <c>blktap replay</c>
/// checks before it issues anything.
/// </summary>
/// <remarks>Threading: build with <see cref="Scan"/> on one thread; the result is then read-only.</remarks>
public sealed class TraceSummary
{
    /// <summary>The largest request a replay issues (256 MiB): anything larger is taken for corruption.</summary>
    public const uint MaxReplayLength = 256u << 20;

    private readonly List<uint> _sessions = new();
    private readonly Dictionary<uint, int> _sessionIndex = new();
    private readonly long[] _opCounts = new long[8];
    private readonly long[] _opBytes = new long[8];

    /// <summary>Number of records.</summary>
    public long Records { get; private set; }
    /// <summary>Session ids in order of first appearance.</summary>
    public IReadOnlyList<uint> Sessions => _sessions;
    /// <summary>Earliest submit time (ns).</summary>
    public ulong FirstSubmitNs { get; private set; }
    /// <summary>Latest submit time (ns).</summary>
    public ulong LastSubmitNs { get; private set; }
    /// <summary>Latest completion time (ns) among completed records, or the latest submit time.</summary>
    public ulong LastEventNs { get; private set; }
    /// <summary>One past the highest 512-byte sector any record touches.</summary>
    public ulong EndSector { get; private set; }
    /// <summary>Records whose submit time is earlier than the previous record's (a replay issues them in file order).</summary>
    public long OutOfOrder { get; private set; }
    /// <summary>Reads and writes whose length is not a multiple of 512 (a replay rounds them up).</summary>
    public long UnalignedLengths { get; private set; }
    /// <summary>Records whose status is not OKAY.</summary>
    public long FailedRecords { get; private set; }
    /// <summary>Records without a completion time.</summary>
    public long WithoutCompletion { get; private set; }
    /// <summary>Records carrying a data hash.</summary>
    public long WithDataHash { get; private set; }
    /// <summary>The index and problem of the first record a replay cannot issue, or null.</summary>
    public (long Index, string Problem)? FirstUnreplayable { get; private set; }

    /// <summary>Number of records of <paramref name="operation"/>.</summary>
    public long Count(BlkifOperation operation) => _opCounts[(int)operation & 7];
    /// <summary>Bytes moved (or discarded) by records of <paramref name="operation"/>.</summary>
    public long Bytes(BlkifOperation operation) => _opBytes[(int)operation & 7];
    /// <summary>The 0-based index of <paramref name="session"/> in order of first appearance, or -1.</summary>
    public int SessionIndex(uint session) => _sessionIndex.TryGetValue(session, out var i) ? i : -1;

    /// <summary>Reads every record (streaming); format errors propagate as <see cref="TraceFormatException"/>.</summary>
    public static TraceSummary Scan(IEnumerable<TraceRecord> records)
    {
        ArgumentNullException.ThrowIfNull(records);
        var s = new TraceSummary();
        ulong previous = 0;
        foreach (var r in records)
        {
            if (s.Records == 0) { s.FirstSubmitNs = r.SubmitNs; previous = r.SubmitNs; }
            if (r.SubmitNs < previous) s.OutOfOrder++;
            previous = r.SubmitNs;
            s.FirstSubmitNs = Math.Min(s.FirstSubmitNs, r.SubmitNs);
            s.LastSubmitNs = Math.Max(s.LastSubmitNs, r.SubmitNs);
            s.LastEventNs = Math.Max(s.LastEventNs, r.IsCompleted ? r.CompleteNs : r.SubmitNs);
            if (!s._sessionIndex.ContainsKey(r.Session)) { s._sessionIndex[r.Session] = s._sessions.Count; s._sessions.Add(r.Session); }
            s._opCounts[(int)r.Operation & 7]++;
            s._opBytes[(int)r.Operation & 7] += r.Length;
            if (r.Status != BlkifStatus.Okay) s.FailedRecords++;
            if (!r.IsCompleted) s.WithoutCompletion++;
            if (r.HasDataHash) s.WithDataHash++;
            if (r.Operation is BlkifOperation.Read or BlkifOperation.Write or BlkifOperation.WriteBarrier && r.Length % 512 != 0) s.UnalignedLengths++;
            if (r.Length > MaxReplayLength)
                s.FirstUnreplayable ??= (s.Records, $"length {r.Length} bytes exceeds the largest request a replay issues ({MaxReplayLength} bytes)");
            else if (r.Sector > ulong.MaxValue / 512 - r.SectorCount)
                s.FirstUnreplayable ??= (s.Records, $"sector {r.Sector} + {r.SectorCount} sectors is past the largest possible disk");
            else if (r.Length > 0 || r.Operation != BlkifOperation.FlushDiskCache)
                s.EndSector = Math.Max(s.EndSector, r.Sector + r.SectorCount);
            s.Records++;
        }
        return s;
    }
}
