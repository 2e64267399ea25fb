namespace BlkTap.Xen.Interop;

/// <summary>Grant-table result codes and copy flags.</summary>
/// <remarks>NOTE: values from xen/include/public/grant_table.h (Debian libxen-dev /usr/include/xen/grant_table.h).</remarks>
internal static class GrantTableConstants
{
    public const short GNTST_okay = 0;
    public const short GNTST_general_error = -1;
    public const short GNTST_bad_domain = -2;
    public const short GNTST_bad_gntref = -3;
    public const short GNTST_bad_handle = -4;
    public const short GNTST_bad_virt_addr = -5;
    public const short GNTST_bad_dev_addr = -6;
    public const short GNTST_no_device_space = -7;
    public const short GNTST_permission_denied = -8;
    public const short GNTST_bad_page = -9;
    public const short GNTST_bad_copy_arg = -10;
    public const short GNTST_address_too_big = -11;
    public const short GNTST_eagain = -12;
    public const short GNTST_no_space = -13;

    /// <summary><c>GNTCOPY_source_gref</c>: the source is a foreign grant (else a local address).</summary>
    public const ushort GNTCOPY_source_gref = 1 << 0;
    /// <summary><c>GNTCOPY_dest_gref</c>: the destination is a foreign grant (else a local address).</summary>
    public const ushort GNTCOPY_dest_gref = 1 << 1;

    /// <summary>The grant page size on x86 and arm (XEN_PAGE_SIZE).</summary>
    public const int PageSize = 4096;
}
