namespace BlkTap.Xen;

/// <summary>
/// The 2005 <c>/dev/blktap</c> character device ABI (the seed era, Xen 2.0/3.0 linux-sparse blktap driver):
/// ioctl numbers, tap modes, the mmap layout of ring pages and the data area, and the request id encoding.
/// </summary>
/// <remarks>
/// NOTE: facts from /work/shared/DESIGN.md ("The 2005 /dev/blktap device") after the 2005 blktap driver: one opener;
/// ioctls are plain small integers (not _IOC-encoded); modes are bit flags where INTERPOSE = INTERCEPT_FE |
/// INTERCEPT_BE. The mmap area is 3 ring pages (0 control, 1 the "be" ring the tap produces requests on,
/// 2 the "fe" ring the tap consumes) followed by the data area from page 3, where request slot i, segment s
/// lives at page <c>3 + i*12 + s</c>. Every member is a constant or a pure function: thread-safe.
/// </remarks>
public static class BlktapDeviceAbi
{
    /// <summary>The page size of every ring and data page.</summary>
    public const int PageSize = 4096;

    /// <summary>ioctl: notify the frontend side (the tap pushed responses on the fe ring).</summary>
    public const uint IoctlKickFe = 1;
    /// <summary>ioctl: notify the backend side (the tap pushed requests on the be ring).</summary>
    public const uint IoctlKickBe = 2;
    /// <summary>ioctl: set the tap mode (argument: one of the <c>Mode*</c> values).</summary>
    public const uint IoctlSetMode = 3;

    /// <summary>Mode: requests flow frontend to backend untouched; the tap sees nothing.</summary>
    public const uint ModePassthrough = 0;
    /// <summary>Mode flag: the tap receives frontend requests (terminating tap).</summary>
    public const uint ModeInterceptFe = 1;
    /// <summary>Mode flag: the tap receives backend responses.</summary>
    public const uint ModeInterceptBe = 2;
    /// <summary>Mode: the tap sits between frontend and backend (<c>INTERCEPT_FE | INTERCEPT_BE</c>).</summary>
    public const uint ModeInterpose = ModeInterceptFe | ModeInterceptBe;

    /// <summary>mmap page 0: the control page.</summary>
    public const int ControlRingPage = 0;
    /// <summary>mmap page 1: the "be" ring, on which the tap produces requests towards the backend.</summary>
    public const int BackendRingPage = 1;
    /// <summary>mmap page 2: the "fe" ring, from which the tap consumes frontend requests.</summary>
    public const int FrontendRingPage = 2;
    /// <summary>The number of ring pages at the start of the mapping.</summary>
    public const int RingPages = 3;
    /// <summary>The first page of the data area.</summary>
    public const int DataAreaFirstPage = RingPages;
    /// <summary>Pages reserved per request slot in the data area.</summary>
    public const int PagesPerSlot = 12;
    /// <summary>The most segments a request carries (BLKIF_MAX_SEGMENTS_PER_REQUEST): segment indices are 0..10.</summary>
    public const int MaxSegmentsPerRequest = 11;
    /// <summary>The largest slot number the 16-bit slot field of an id can carry.</summary>
    public const int MaxSlot = 0xFFFF;

    /// <summary>The mmap page index holding segment <paramref name="segment"/> of request slot <paramref name="slot"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException">slot is negative or above <see cref="MaxSlot"/>, or segment is not in 0..10.</exception>
    public static long DataPage(int slot, int segment)
    {
        CheckSlot(slot);
        if ((uint)segment >= MaxSegmentsPerRequest)
            throw new ArgumentOutOfRangeException(nameof(segment), segment, $"segment must be 0..{MaxSegmentsPerRequest - 1}");
        return DataAreaFirstPage + (long)slot * PagesPerSlot + segment;
    }

    /// <summary>The byte offset in the mapping of segment <paramref name="segment"/> of slot <paramref name="slot"/>.</summary>
    public static long DataOffset(int slot, int segment) => DataPage(slot, segment) * PageSize;

    /// <summary>The mapping length in bytes for <paramref name="slots"/> request slots (ring pages plus data area).</summary>
    public static long MappingLength(int slots)
    {
        if (slots < 0 || slots > MaxSlot + 1)
            throw new ArgumentOutOfRangeException(nameof(slots), slots, $"slots must be 0..{MaxSlot + 1}");
        return ((long)RingPages + (long)slots * PagesPerSlot) * PageSize;
    }

    /// <summary>The request id the tap sees: <c>(domid &lt;&lt; 16) | slot</c>.</summary>
    public static uint MakeId(ushort domid, int slot)
    {
        CheckSlot(slot);
        return ((uint)domid << 16) | (uint)slot;
    }

    /// <summary>The frontend domain of a tap-visible id.</summary>
    public static ushort IdDomain(ulong id) => (ushort)(id >> 16);

    /// <summary>The request slot of a tap-visible id.</summary>
    public static int IdSlot(ulong id) => (int)(id & 0xFFFF);

    private static void CheckSlot(int slot)
    {
        if ((uint)slot > MaxSlot)
            throw new ArgumentOutOfRangeException(nameof(slot), slot, $"slot must be 0..{MaxSlot}");
    }
}
