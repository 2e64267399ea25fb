namespace BlkTap.Trace;

/// <summary>Per-record flags of a <see cref="TraceRecord"/>.</summary>
[Flags]
public enum TraceRecordFlags : byte
{
    /// <summary>No flag set.</summary>
    None = 0,
    /// <summary><see cref="TraceRecord.DataHash"/> holds the XxHash64 of the request's data.</summary>
    HasDataHash = 1,
    /// <summary>
    /// The completion time is unknown (the source format has none, or the request never completed
    /// inside the trace); <see cref="TraceRecord.CompleteNs"/> then equals <see cref="TraceRecord.SubmitNs"/>.
    /// </summary>
    NoCompletion = 2,
}

/// <summary>
/// One block request of a trace: when it was submitted and completed, on which session, what it did
/// and how it ended. An immutable value; safe to share between threads.
/// </summary>
/// <remarks>
/// Times are nanoseconds relative to the start of the trace. <see cref="Sector"/> counts 512-byte
/// sectors whatever the device's logical block size (as blkif does). A flush with no data has
/// <see cref="Length"/> 0.
/// </remarks>
public readonly struct TraceRecord : IEquatable<TraceRecord>
{
    /// <summary>The operations a trace can hold (every <see cref="BlkifOperation"/> except Indirect, a transport detail).</summary>
    public static bool IsTraceOperation(BlkifOperation op) =>
        op is BlkifOperation.Read or BlkifOperation.Write or BlkifOperation.WriteBarrier
            or BlkifOperation.FlushDiskCache or BlkifOperation.Discard;

    /// <summary>Creates a record. Throws <see cref="ArgumentException"/> for an operation or status a trace cannot hold.</summary>
    public TraceRecord(ulong submitNs, ulong completeNs, uint session, BlkifOperation operation, ulong sector,
        uint length, BlkifStatus status, ulong? dataHash = null, bool completed = true)
    {
        if (!IsTraceOperation(operation))
            throw new ArgumentException($"operation {operation} ({(byte)operation}) cannot appear in a trace", nameof(operation));
        if (status is not (BlkifStatus.Okay or BlkifStatus.Error or BlkifStatus.NotSupported))
            throw new ArgumentException($"status {(short)status} is not a blkif status", nameof(status));
        SubmitNs = submitNs;
        CompleteNs = completed ? completeNs : submitNs;
        Session = session;
        Operation = operation;
        Sector = sector;
        Length = length;
        Status = status;
        DataHash = dataHash ?? 0;
        Flags = (dataHash.HasValue ? TraceRecordFlags.HasDataHash : 0) | (completed ? 0 : TraceRecordFlags.NoCompletion);
    }

    /// <summary>Submit time, ns since the trace started.</summary>
    public ulong SubmitNs { get; }
    /// <summary>Completion time, ns since the trace started (equals <see cref="SubmitNs"/> when <see cref="TraceRecordFlags.NoCompletion"/> is set).</summary>
    public ulong CompleteNs { get; }
    /// <summary>The session (frontend, disk, device) the request came from.</summary>
    public uint Session { get; }
    /// <summary>The operation.</summary>
    public BlkifOperation Operation { get; }
    /// <summary>First 512-byte sector.</summary>
    public ulong Sector { get; }
    /// <summary>Length in bytes (0 for a flush without data).</summary>
    public uint Length { get; }
    /// <summary>The response status.</summary>
    public BlkifStatus Status { get; }
    /// <summary>XxHash64 of the data when <see cref="HasDataHash"/>, otherwise 0.</summary>
    public ulong DataHash { get; }
    /// <summary>The record's flags.</summary>
    public TraceRecordFlags Flags { get; }
    /// <summary>True when <see cref="DataHash"/> is meaningful.</summary>
    public bool HasDataHash => (Flags & TraceRecordFlags.HasDataHash) != 0;
    /// <summary>True when <see cref="CompleteNs"/> is a real completion time.</summary>
    public bool IsCompleted => (Flags & TraceRecordFlags.NoCompletion) == 0;
    /// <summary>Latency in ns (0 when the completion is unknown or precedes submission).</summary>
    public ulong LatencyNs => CompleteNs > SubmitNs ? CompleteNs - SubmitNs : 0;
    /// <summary>Number of 512-byte sectors covered, rounded up.</summary>
    public ulong SectorCount => ((ulong)Length + 511) / 512;

    /// <inheritdoc />
    public bool Equals(TraceRecord other) =>
        SubmitNs == other.SubmitNs && CompleteNs == other.CompleteNs && Session == other.Session
        && Operation == other.Operation && Sector == other.Sector && Length == other.Length
        && Status == other.Status && DataHash == other.DataHash && Flags == other.Flags;

    /// <inheritdoc />
    public override bool Equals(object? obj) => obj is TraceRecord r && Equals(r);

    /// <inheritdoc />
    public override int GetHashCode() => HashCode.Combine(SubmitNs, CompleteNs, Session, Operation, Sector, Length, Status, DataHash);

    /// <summary>Equality.</summary>
    public static bool operator ==(TraceRecord left, TraceRecord right) => left.Equals(right);
    /// <summary>Inequality.</summary>
    public static bool operator !=(TraceRecord left, TraceRecord right) => !left.Equals(right);

    /// <inheritdoc />
    public override string ToString() =>
        $"{SubmitNs}..{(IsCompleted ? CompleteNs.ToString(System.Globalization.CultureInfo.InvariantCulture) : "?")} s{Session} {Operation} {Sector}+{Length}B {Status}"
        + (HasDataHash ? $" #{DataHash:x16}" : "");
}
