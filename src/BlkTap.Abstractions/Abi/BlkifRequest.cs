namespace BlkTap;

/// <summary>
/// A decoded blkif request: the segment form (read, write, barrier, flush), the discard form or the
/// indirect form, whichever <see cref="Operation"/> selects. A plain value, copied out of shared memory
/// once; nothing here points into the ring.
/// </summary>
/// <remarks>Not thread-safe (a mutable struct); copy it to share it.</remarks>
public struct BlkifRequest
{
    /// <summary>The operation byte. May hold a value outside the enum when a guest sent garbage.</summary>
    public BlkifOperation Operation;

    /// <summary>
    /// Segment count: nr_segments (u8) for the segment form, nr_segments (u16) for the indirect form,
    /// zero for discard. Not yet validated: may exceed what the form allows.
    /// </summary>
    public int SegmentCount;

    /// <summary>The virtual device handle.</summary>
    public ushort Handle;

    /// <summary>The guest's private id, echoed in the response.</summary>
    public ulong Id;

    /// <summary>First 512-byte sector on the disk.</summary>
    public ulong Sector;

    /// <summary>Inline segments (segment form): the first min(SegmentCount, 11) are filled.</summary>
    public BlkifSegmentArray Segments;

    /// <summary>Discard form: flag byte (<see cref="BlkifConstants.DiscardSecure"/>).</summary>
    public byte DiscardFlags;

    /// <summary>Discard form: number of sectors to discard.</summary>
    public ulong DiscardSectorCount;

    /// <summary>Indirect form: the real operation (read or write).</summary>
    public BlkifOperation IndirectOperation;

    /// <summary>Indirect form: references of the pages holding the segment descriptors.</summary>
    public BlkifIndirectRefArray IndirectRefs;

    /// <summary>Number of indirect pages an indirect request with <see cref="SegmentCount"/> segments uses.</summary>
    public readonly int IndirectPageCount =>
        (SegmentCount + BlkifConstants.SegmentsPerIndirectFrame - 1) / BlkifConstants.SegmentsPerIndirectFrame;
}

/// <summary>A blkif response (<c>struct blkif_response</c>).</summary>
/// <param name="Id">The request's id, echoed.</param>
/// <param name="Operation">The request's operation byte, echoed.</param>
/// <param name="Status">The outcome.</param>
public readonly record struct BlkifResponse(ulong Id, BlkifOperation Operation, BlkifStatus Status);
