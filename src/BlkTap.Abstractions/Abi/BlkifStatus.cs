namespace BlkTap;

/// <summary>
/// The <c>status</c> field of a blkif response (<c>BLKIF_RSP_*</c>), a signed 16-bit value.
/// </summary>
/// <remarks>NOTE: values from xen/include/public/io/blkif.h.</remarks>
public enum BlkifStatus : short
{
    /// <summary>BLKIF_RSP_OKAY.</summary>
    Okay = 0,
    /// <summary>BLKIF_RSP_ERROR: the operation failed (-EIO).</summary>
    Error = -1,
    /// <summary>BLKIF_RSP_EOPNOTSUPP: the operation is not supported.</summary>
    NotSupported = -2,
}
