namespace BlkTap;

/// <summary>
/// The <c>operation</c> byte of a blkif request (<c>BLKIF_OP_*</c>).
/// </summary>
/// <remarks>
/// NOTE: values from xen/include/public/io/blkif.h. 4 is BLKIF_OP_RESERVED_1 (was a Citrix-only
/// trim) and is never valid.
/// </remarks>
public enum BlkifOperation : byte
{
    /// <summary>BLKIF_OP_READ: read sectors into the granted pages.</summary>
    Read = 0,
    /// <summary>BLKIF_OP_WRITE: write sectors from the granted pages.</summary>
    Write = 1,
    /// <summary>BLKIF_OP_WRITE_BARRIER: a write ordered after every earlier write.</summary>
    WriteBarrier = 2,
    /// <summary>BLKIF_OP_FLUSH_DISKCACHE: make every completed write durable (may carry data).</summary>
    FlushDiskCache = 3,
    /// <summary>BLKIF_OP_DISCARD: the sectors' contents are no longer needed.</summary>
    Discard = 5,
    /// <summary>BLKIF_OP_INDIRECT: a read or write whose segments live in indirect pages.</summary>
    Indirect = 6,
}
