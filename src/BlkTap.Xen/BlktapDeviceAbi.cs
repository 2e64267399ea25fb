namespace BlkTap.Xen;

/// <summary>
/// The 2005 <c>/dev/blktap</c> character device ABI, as the 2005 XenLinux driver defines it: ioctl numbers, tap
/// modes, the mmap layout (three ring pages, then the data area) and the request ids the driver writes.
/// </summary>
/// <remarks>
/// <para>Source: xen-project/xen, <c>linux-2.6-xen-sparse/drivers/xen/blktap/</c> (<c>blktap.h</c>,
/// <c>blktap_userdev.c</c>, <c>blktap_datapath.c</c>) of mid-2005, the ctrl_if era before xenbus; and the matching
/// library <c>tools/blktap/blktaplib.c</c>. Every member is a constant or a pure function: thread-safe.</para>
/// </remarks>
public static class BlktapDeviceAbi
{
    /// <summary>The page size of every ring and data page (x86 PAGE_SIZE).</summary>
    public const int PageSize = 4096;

    /// <summary>The device node the 2005 library (blktaplib.c) opens.</summary>
    /// <remarks>NOTE: blktaplib.c opens "/dev/blktap"; blktap_userdev.c registers a misc device named "blktap"
    /// (minor <see cref="MiscMinor"/>, devfs name "misc/blktap"), while a comment in blktap.h says
    /// "/dev/xen/blktap ... minor=200". The code wins: /dev/blktap.</remarks>
    public const string DefaultDevicePath = "/dev/blktap";

    /// <summary>The misc device minor (major 10) of the device.</summary>
    /// <remarks>NOTE: blktap.h BLKTAP_MINOR is 202, although its own comment says 200.</remarks>
    public const int MiscMinor = 202;

    /// <summary>ioctl BLKTAP_IOCTL_KICK_FE: the kernel reads the tap's responses off the fe ring.</summary>
    /// <remarks>NOTE: blktap.h: plain small integers, not _IOC-encoded; the argument is ignored.</remarks>
    public const uint IoctlKickFe = 1;
    /// <summary>ioctl BLKTAP_IOCTL_KICK_BE: the kernel reads the tap's requests off the be ring.</summary>
    public const uint IoctlKickBe = 2;
    /// <summary>ioctl BLKTAP_IOCTL_SETMODE: the argument (by value, not a pointer) is the mode.</summary>
    public const uint IoctlSetMode = 3;
    /// <summary>ioctl BLKTAP_IOCTL_PRINT_IDXS: the kernel logs its ring indexes (debugging).</summary>
    public const uint IoctlPrintIndexes = 100;

    /// <summary>The error number the driver returns for an unknown ioctl or an invalid mode (ENOIOCTLCMD).</summary>
    /// <remarks>NOTE: blktap_userdev.c: an invalid SETMODE falls through into PRINT_IDXS and returns
    /// -ENOIOCTLCMD (515, a kernel-internal number); whether the 2005 VFS turned it into ENOTTY or EINVAL before
    /// user space saw it is not established here, so any non-zero result is a failure.</remarks>
    public const int ENOIOCTLCMD = 515;

    /// <summary>BLKTAP_MODE_PASSTHROUGH (the driver's default): the tap sees nothing.</summary>
    public const uint ModePassthrough = 0x00;
    /// <summary>BLKTAP_MODE_INTERCEPT_FE: frontend requests and blkif-backend control messages go to the tap.</summary>
    public const uint ModeInterceptFe = 0x01;
    /// <summary>BLKTAP_MODE_INTERCEPT_BE: the tap's be ring reaches the real backend and its responses come back.</summary>
    public const uint ModeInterceptBe = 0x02;
    /// <summary>BLKTAP_MODE_COPY_FE.</summary>
    public const uint ModeCopyFe = 0x04;
    /// <summary>BLKTAP_MODE_COPY_BE.</summary>
    public const uint ModeCopyBe = 0x08;
    /// <summary>BLKTAP_MODE_COPY_FE_PAGES.</summary>
    public const uint ModeCopyFePages = 0x10;
    /// <summary>BLKTAP_MODE_COPY_BE_PAGES.</summary>
    public const uint ModeCopyBePages = 0x20;
    /// <summary>BLKTAP_MODE_INTERPOSE = INTERCEPT_FE | INTERCEPT_BE: the mode the 2005 blktaplib.c sets.</summary>
    public const uint ModeInterpose = ModeInterceptFe | ModeInterceptBe;

    /// <summary>Whether the driver accepts <paramref name="mode"/> (blktap.h BLKTAP_MODE_VALID).</summary>
    public static bool IsValidMode(uint mode) =>
        mode is ModePassthrough or ModeInterceptFe or ModeInterceptBe or ModeInterpose
        || (mode & ~ModeCopyFePages) == ModeCopyFe
        || (mode & ~ModeCopyBePages) == ModeCopyBe
        || (mode & ~(ModeCopyFePages | ModeCopyBePages)) == (ModeCopyFe | ModeCopyBe);

    /// <summary>mmap page 0: the control ring (the kernel produces ctrl_msg_t copies, the tap consumes).</summary>
    /// <remarks>NOTE: blktap_userdev.c blktap_mmap: page 0 ctrl, page 1 the "ube" ring (kernel is its back end),
    /// page 2 the "ufe" ring (kernel is its front end). The comment "Ctrl, Front, and Back" has 1 and 2 swapped.</remarks>
    public const int ControlRingPage = 0;
    /// <summary>mmap page 1: the be ring: the tap is its front end (produces requests for the real backend).</summary>
    public const int BackendRingPage = 1;
    /// <summary>mmap page 2: the fe ring: the tap is its back end (consumes frontend requests, produces responses).</summary>
    public const int FrontendRingPage = 2;
    /// <summary>RING_PAGES.</summary>
    public const int RingPages = 3;
    /// <summary>MAX_PENDING_REQS: request slots in the data area, and the driver's active requests.</summary>
    public const int Slots = 64;
    /// <summary>MMAP_PAGES_PER_REQUEST = BLKIF_MAX_SEGMENTS_PER_REQUEST + 1.</summary>
    public const int PagesPerSlot = Blkif2005.MaxSegmentsPerRequest + 1;
    /// <summary>MMAP_PAGES = MAX_PENDING_REQS * MMAP_PAGES_PER_REQUEST.</summary>
    public const int DataPages = Slots * PagesPerSlot;
    /// <summary>The only mapping length the driver accepts: (MMAP_PAGES + RING_PAGES) pages.</summary>
    /// <remarks>NOTE: blktap_userdev.c blktap_mmap fails with EAGAIN ("you _must_ map exactly %d pages!") for any
    /// other size.</remarks>
    public const long MappingLength = (long)(DataPages + RingPages) * PageSize;

    /// <summary>The mmap page holding segment <paramref name="segment"/> of request slot <paramref name="slot"/>.</summary>
    /// <remarks>NOTE: blktap_userdev.c MMAP_VADDR(user_vstart, idx, seg): user_vstart is page 3.</remarks>
    /// <exception cref="ArgumentOutOfRangeException">slot is not 0..63 or segment is not 0..10.</exception>
    public static long DataPage(int slot, int segment)
    {
        if ((uint)slot >= Slots) throw new ArgumentOutOfRangeException(nameof(slot), slot, $"slot must be 0..{Slots - 1}");
        if ((uint)segment >= Blkif2005.MaxSegmentsPerRequest)
            throw new ArgumentOutOfRangeException(nameof(segment), segment, $"segment must be 0..{Blkif2005.MaxSegmentsPerRequest - 1}");
        return RingPages + (long)slot * PagesPerSlot + segment;
    }

    /// <summary>The byte offset in the mapping of segment <paramref name="segment"/> of slot <paramref name="slot"/>.</summary>
    public static long DataOffset(int slot, int segment) => DataPage(slot, segment) * PageSize;

    /// <summary>The id the driver writes on the fe ring: MAKE_ID(domid, idx) = <c>(domid &lt;&lt; 16) | (idx &amp; 63)</c>.</summary>
    /// <remarks>NOTE: blktap_datapath.c MAKE_ID masks the index with MAX_ACTIVE_REQS-1; the frontend's own id is
    /// kept in the kernel (active_req_t) and restored when the tap's response is read back.</remarks>
    public static uint MakeId(ushort domid, int slot) => ((uint)domid << 16) | ((uint)slot & (Slots - 1));

    /// <summary>ID_TO_DOM: the frontend domain of a driver id.</summary>
    public static ushort IdDomain(ulong id) => (ushort)(id >> 16);

    /// <summary>ID_TO_IDX: the slot of a driver id (the low 16 bits; the driver only ever writes 0..63).</summary>
    public static int IdSlot(ulong id) => (int)(id & 0xFFFF);
}
