namespace BlkTap.Xen;

/// <summary>
/// The 2005 blkif wire protocol the 2005 <c>/dev/blktap</c> driver carries on its rings: operations, statuses,
/// the <c>frame_and_sects</c> segment encoding and the 2005 shared ring (no event indices).
/// </summary>
/// <remarks>
/// <para>Source: xen-project/xen <c>xen/include/public/io/blkif.h</c> and <c>io/ring.h</c> of mid-2005 (the
/// versions without PACKED, with 5-bit sector fields and <c>blkif_fas_from_gref</c>; the pairing with the driver is
/// inferred from content: they match the <c>domain_controller.h</c> with <c>CONTROL_RING_MEM</c> 520 and
/// <c>shmem_ref</c> that the driver's control path uses; commit dates could not be read).
/// Every member is a constant or a pure function: thread-safe.</para>
/// </remarks>
public static class Blkif2005
{
    /// <summary>BLKIF_OP_READ.</summary>
    public const byte OpRead = 0;
    /// <summary>BLKIF_OP_WRITE.</summary>
    public const byte OpWrite = 1;
    /// <summary>BLKIF_OP_PROBE: the frontend asks for its disks; the answer is a list of vdisk_t in the buffer.</summary>
    /// <remarks>NOTE: blkif.h 2005: operation 2 is PROBE; today's blkif.h reuses 2 for WRITE_BARRIER.</remarks>
    public const byte OpProbe = 2;

    /// <summary>BLKIF_RSP_OKAY.</summary>
    public const short StatusOkay = 0;
    /// <summary>BLKIF_RSP_ERROR (the only failure status of 2005; there is no EOPNOTSUPP).</summary>
    public const short StatusError = -1;

    /// <summary>BLKIF_MAX_SEGMENTS_PER_REQUEST.</summary>
    public const int MaxSegmentsPerRequest = 11;

    /// <summary>Sectors are 512 bytes; first_sect/last_sect index them within a 4096-byte page (0..7).</summary>
    public const int SectorSize = 512;

    /// <summary>Sectors per x86 page.</summary>
    public const int SectorsPerPage = BlktapDeviceAbi.PageSize / SectorSize;

    /// <summary>The word the driver writes into <c>frame_and_sects[1]</c> of every PROBE it forwards.</summary>
    /// <remarks>NOTE: blktap.h BLKTAP_COOKIE, written by blktap_datapath.c do_block_io_op ("BLKIF_OP_PROBE_HACK:
    /// signal to the backend that we are a tap domain").</remarks>
    public const uint TapCookie = 0xbeadfeed;

    /// <summary>The 2005 shared ring header: req_prod u32 @0, rsp_prod u32 @4, entries from @8.</summary>
    /// <remarks>NOTE: ring.h of 2005: <c>struct sring { RING_IDX req_prod; RING_IDX rsp_prod; ring[1]; }</c> and
    /// SHARED_RING_INIT sets only the two producers; there are no req_event/rsp_event and no padding, so no
    /// notification hold-off: the device's kicks are ioctls.</remarks>
    public const int RingHeaderSize = 8;
    /// <summary>Offset of req_prod in a 2005 shared ring.</summary>
    public const int RingRequestProducer = 0;
    /// <summary>Offset of rsp_prod in a 2005 shared ring.</summary>
    public const int RingResponseProducer = 4;

    /// <summary>
    /// Entries of a 2005 ring of <paramref name="entrySize"/>-byte entries in <paramref name="bytes"/> bytes:
    /// <c>__RD32((bytes - 2*sizeof(RING_IDX)) / entrySize)</c>, the largest power of two that fits.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">No entry fits.</exception>
    public static uint RingEntries(int bytes, int entrySize)
    {
        if (entrySize <= 0 || bytes - RingHeaderSize < entrySize)
            throw new ArgumentOutOfRangeException(nameof(entrySize), entrySize, $"no {entrySize}-byte entry fits in {bytes} bytes");
        uint fit = (uint)((bytes - RingHeaderSize) / entrySize);
        return 1u << (31 - System.Numerics.BitOperations.LeadingZeroCount(fit));
    }

    /// <summary>blkif_fas_from_gref: <c>(gref &lt;&lt; 16) | (first &lt;&lt; 5) | last</c>.</summary>
    /// <remarks>NOTE: blkif.h mid-2005: @f_a_s[4:0]=last_sect, @f_a_s[9:5]=first_sect, grant reference from bit
    /// 16 (the earlier PACKED blkif.h used 3-bit fields at [2:0] and [5:3]).</remarks>
    public static ulong MakeFrameAndSects(uint grantRef, byte firstSector, byte lastSector) =>
        ((ulong)grantRef << 16) | ((ulong)(uint)(firstSector & 31) << 5) | (uint)(lastSector & 31);

    /// <summary>blkif_first_sect.</summary>
    public static byte FirstSector(ulong frameAndSects) => (byte)((frameAndSects >> 5) & 31);

    /// <summary>blkif_last_sect.</summary>
    public static byte LastSector(ulong frameAndSects) => (byte)(frameAndSects & 31);

    /// <summary>blkif_gref_from_fas (the grant build; without grants the upper bits are a machine frame address).</summary>
    public static uint GrantRef(ulong frameAndSects) => (uint)(frameAndSects >> 16);
}
