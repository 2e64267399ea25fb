namespace BlkTap;

/// <summary>What is wrong with a request, if anything.</summary>
public enum RequestFault
{
    /// <summary>The request is well-formed.</summary>
    None = 0,
    /// <summary>The operation byte is not one this backend knows (answered EOPNOTSUPP).</summary>
    UnknownOperation,
    /// <summary>Too many segments for the form, or none for a read or write.</summary>
    BadSegmentCount,
    /// <summary>A segment has first_sect &gt; last_sect or last_sect &gt; 7.</summary>
    BadSegment,
    /// <summary>The request reaches past the end of the disk.</summary>
    OutOfRange,
    /// <summary>A write, barrier or discard to a read-only disk.</summary>
    ReadOnly,
    /// <summary>An indirect request whose inner operation is not read or write.</summary>
    BadIndirectOperation,
}

/// <summary>Checks decoded requests against the protocol's rules. Pure functions: thread-safe.</summary>
public static class BlkifValidation
{
    /// <summary>The status a fault is answered with: EOPNOTSUPP for unknown operations, ERROR otherwise.</summary>
    public static BlkifStatus StatusFor(RequestFault fault) => fault switch
    {
        RequestFault.None => BlkifStatus.Okay,
        RequestFault.UnknownOperation => BlkifStatus.NotSupported,
        _ => BlkifStatus.Error,
    };

    /// <summary>
    /// Checks the fields of a segment-form or discard request that do not need the indirect pages.
    /// Segment validity and the range check for segment forms use the decoded inline segments.
    /// For indirect requests only the header is checked here (count and inner op).
    /// </summary>
    /// <param name="request">The decoded request.</param>
    /// <param name="diskSectors">Disk size in 512-byte sectors.</param>
    /// <param name="readOnly">Whether the disk refuses writes.</param>
    /// <param name="maxIndirectSegments">Segments an indirect request may carry (0: indirect not offered).</param>
    public static RequestFault Validate(in BlkifRequest request, ulong diskSectors, bool readOnly, int maxIndirectSegments = 0)
    {
        switch (request.Operation)
        {
            case BlkifOperation.Read:
            case BlkifOperation.Write:
            case BlkifOperation.WriteBarrier:
            case BlkifOperation.FlushDiskCache:
                {
                    int n = request.SegmentCount;
                    if (n > BlkifConstants.MaxSegmentsPerRequest) return RequestFault.BadSegmentCount;
                    bool dataOp = request.Operation is BlkifOperation.Read or BlkifOperation.Write;
                    if (n == 0 && dataOp) return RequestFault.BadSegmentCount;
                    if (readOnly && request.Operation != BlkifOperation.Read && (n > 0 || request.Operation == BlkifOperation.WriteBarrier))
                        return RequestFault.ReadOnly;
                    ulong sectors = 0;
                    for (int i = 0; i < n; i++)
                    {
                        var s = request.Segments[i];
                        if (!s.IsValid) return RequestFault.BadSegment;
                        sectors += (ulong)s.SectorCount;
                    }
                    return InRange(request.Sector, sectors, diskSectors) ? RequestFault.None : RequestFault.OutOfRange;
                }
            case BlkifOperation.Discard:
                if (readOnly) return RequestFault.ReadOnly;
                return InRange(request.Sector, request.DiscardSectorCount, diskSectors) ? RequestFault.None : RequestFault.OutOfRange;
            case BlkifOperation.Indirect:
                if (maxIndirectSegments <= 0) return RequestFault.UnknownOperation;
                if (request.IndirectOperation is not (BlkifOperation.Read or BlkifOperation.Write))
                    return RequestFault.BadIndirectOperation;
                if (request.SegmentCount == 0 || request.SegmentCount > maxIndirectSegments) return RequestFault.BadSegmentCount;
                if (readOnly && request.IndirectOperation == BlkifOperation.Write) return RequestFault.ReadOnly;
                return RequestFault.None;
            default:
                return RequestFault.UnknownOperation;
        }
    }

    /// <summary>True when [start, start + count) lies within a disk of <paramref name="diskSectors"/>, without overflow.</summary>
    public static bool InRange(ulong start, ulong count, ulong diskSectors) =>
        start <= diskSectors && count <= diskSectors - start;
}
