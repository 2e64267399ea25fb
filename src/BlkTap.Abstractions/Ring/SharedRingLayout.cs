using System.Numerics;

namespace BlkTap;

/// <summary>
/// Geometry of a Xen shared ring (<c>struct blkif_sring</c> from ring.h's DEFINE_RING_TYPES).
/// </summary>
/// <remarks>
/// NOTE: xen/include/public/io/ring.h: req_prod @0, req_event @4, rsp_prod @8, rsp_event @12, a 4-byte
/// private union and 44 bytes of padding, entries from @64. The entry count is
/// __RD32((size - 64) / sizeof(entry)): the largest power of two that fits, 32 for blkif in one page on
/// either ABI. A ring of 2^order pages (ring-page-order) has (4096 &lt;&lt; order) bytes.
/// </remarks>
public static class SharedRingLayout
{
    /// <summary>Offset of req_prod (written by the frontend).</summary>
    public const int ReqProd = 0;
    /// <summary>Offset of req_event (written by the backend).</summary>
    public const int ReqEvent = 4;
    /// <summary>Offset of rsp_prod (written by the backend).</summary>
    public const int RspProd = 8;
    /// <summary>Offset of rsp_event (written by the frontend).</summary>
    public const int RspEvent = 12;
    /// <summary>Offset of the first entry.</summary>
    public const int EntriesOffset = 64;

    /// <summary>Number of entries of <paramref name="entrySize"/> bytes in a ring of <paramref name="ringBytes"/> bytes.</summary>
    public static uint EntryCount(int ringBytes, int entrySize)
    {
        if (entrySize <= 0) throw new ArgumentOutOfRangeException(nameof(entrySize));
        int fit = (ringBytes - EntriesOffset) / entrySize;
        if (fit < 1) throw new ArgumentOutOfRangeException(nameof(ringBytes), $"a ring of {ringBytes} bytes holds no {entrySize}-byte entry");
        return BitOperations.RoundUpToPowerOf2((uint)fit + 1) >> 1;
    }

    /// <summary>Bytes of a ring of 2^<paramref name="pageOrder"/> pages.</summary>
    public static int BytesForOrder(int pageOrder) => BlkifConstants.PageSize << pageOrder;
}
