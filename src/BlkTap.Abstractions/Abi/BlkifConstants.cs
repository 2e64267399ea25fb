namespace BlkTap;

/// <summary>Numeric limits of the blkif protocol.</summary>
/// <remarks>NOTE: from xen/include/public/io/blkif.h unless stated.</remarks>
public static class BlkifConstants
{
    /// <summary>BLKIF_MAX_SEGMENTS_PER_REQUEST: segments carried inline in one request.</summary>
    public const int MaxSegmentsPerRequest = 11;

    /// <summary>BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST: indirect pages referenced by one indirect request.</summary>
    public const int MaxIndirectPagesPerRequest = 8;

    /// <summary>Segments described by one indirect page (PAGE_SIZE / sizeof(blkif_request_segment)).</summary>
    public const int SegmentsPerIndirectFrame = PageSize / 8;

    /// <summary>The page (grant frame) size: 4096 bytes.</summary>
    public const int PageSize = 4096;

    /// <summary>
    /// Sector size used by first_sect, last_sect and sector_number: always 512 bytes, whatever the
    /// disk's <c>sector-size</c> node says (blkif.h, "feature-large-sector-size" discussion).
    /// </summary>
    public const int SectorSize = 512;

    /// <summary>Sectors in one page (first_sect ≤ last_sect ≤ 7).</summary>
    public const int SectorsPerPage = PageSize / SectorSize;

    /// <summary>BLKIF_DISCARD_SECURE: the discard must be secure (flag byte of a discard request).</summary>
    public const byte DiscardSecure = 1;

    /// <summary>The largest ring-page-order the runtime accepts (rings of up to 8 pages).</summary>
    public const int MaxRingPageOrder = 3;
}

/// <summary>Bits of the xenstore <c>info</c> node of a virtual disk (VDISK_*).</summary>
/// <remarks>NOTE: from xen/include/public/io/blkif.h: VDISK_CDROM 0x1, VDISK_REMOVABLE 0x2, VDISK_READONLY 0x4.</remarks>
[Flags]
public enum VdiskInfo : uint
{
    /// <summary>No flags.</summary>
    None = 0,
    /// <summary>VDISK_CDROM.</summary>
    CdRom = 0x1,
    /// <summary>VDISK_REMOVABLE.</summary>
    Removable = 0x2,
    /// <summary>VDISK_READONLY.</summary>
    ReadOnly = 0x4,
}
