using System.Runtime.CompilerServices;

namespace BlkTap;

/// <summary>
/// One segment of a request (<c>struct blkif_request_segment</c>): a granted page and the inclusive
/// range of 512-byte sectors within it that the transfer uses.
/// </summary>
/// <remarks>
/// NOTE: xen/include/public/io/blkif.h: gref u32 @0, first_sect u8 @4, last_sect u8 @5, size 8
/// (two bytes of tail padding). Consecutive segments cover consecutive disk sectors: segment i starts
/// at the request's sector plus the sector counts of segments 0..i-1, not at sector + 8*i.
/// </remarks>
public readonly record struct BlkifSegment(uint GrantRef, byte FirstSector, byte LastSector)
{
    /// <summary>Encoded size of a segment: 8 bytes.</summary>
    public const int Size = 8;

    /// <summary>True when first ≤ last ≤ 7.</summary>
    public bool IsValid => FirstSector <= LastSector && LastSector < BlkifConstants.SectorsPerPage;

    /// <summary>Number of sectors this segment moves (valid segments only).</summary>
    public int SectorCount => LastSector - FirstSector + 1;

    /// <summary>Byte offset of the first sector within the page.</summary>
    public int PageOffset => FirstSector * BlkifConstants.SectorSize;

    /// <summary>Number of bytes this segment moves (valid segments only).</summary>
    public int ByteCount => SectorCount * BlkifConstants.SectorSize;
}

/// <summary>Inline storage for the 11 segments of a request, so a decoded request never allocates.</summary>
[InlineArray(BlkifConstants.MaxSegmentsPerRequest)]
public struct BlkifSegmentArray
{
    private BlkifSegment _element0;
}

/// <summary>Inline storage for the 8 indirect page references of an indirect request.</summary>
[InlineArray(BlkifConstants.MaxIndirectPagesPerRequest)]
public struct BlkifIndirectRefArray
{
    private uint _element0;
}
