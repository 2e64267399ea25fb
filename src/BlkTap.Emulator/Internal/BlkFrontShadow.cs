namespace BlkTap.Emulator.Internal;

/// <summary>
/// The frontend's record of one in-flight ring request (Linux blkfront's "shadow"), indexed by the
/// request id. Arrays are allocated once per slot and reused.
/// </summary>
/// <remarks>Threading: touched only on the emulator's scheduler.</remarks>
internal sealed class BlkFrontShadow
{
    public BlkFrontOperation? Operation { get; set; }

    /// <summary>The operation byte sent (compared with the response's).</summary>
    public BlkifOperation RequestOperation { get; set; }

    /// <summary>Byte offset of this part's data within the caller's buffer.</summary>
    public int BufferOffset { get; set; }

    public int SegmentCount { get; set; }

    public uint[] GrantRefs { get; } = new uint[BlkifConstants.MaxSegmentsPerRequest];
    public nint[] Pages { get; } = new nint[BlkifConstants.MaxSegmentsPerRequest];
    public byte[] FirstSectors { get; } = new byte[BlkifConstants.MaxSegmentsPerRequest];
    public byte[] SectorCounts { get; } = new byte[BlkifConstants.MaxSegmentsPerRequest];
    /// <summary>Whether each segment's page is a persistent grant (kept granted, back to the ring's pool).</summary>
    public bool[] Persistent { get; } = new bool[BlkifConstants.MaxSegmentsPerRequest];

    public bool InUse => Operation != null;
}
