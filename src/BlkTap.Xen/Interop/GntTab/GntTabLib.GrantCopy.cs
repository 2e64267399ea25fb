using System.Runtime.InteropServices;

namespace BlkTap.Xen.Interop;

internal static partial class GntTabLib
{
    /// <summary><c>int xengnttab_grant_copy(xengnttab_handle *xgt, uint32_t count, xengnttab_grant_copy_segment_t *segs);</c>
    /// Per-segment results land in each segment's status (GNTST_*).</summary>
    // NOTE: xengnttab.h's struct xengnttab_grant_copy_segment has the same layout as gntdev.h's
    // struct gntdev_grant_copy_segment (libxengnttab passes the array straight to IOCTL_GNTDEV_GRANT_COPY);
    // the ABI tests check both against GntdevGrantCopySegment.
    [LibraryImport(XenLibraries.XenGntTab, EntryPoint = "xengnttab_grant_copy", SetLastError = true)]
    public static unsafe partial int GrantCopy(SafeGntTabHandle h, uint count, GntdevGrantCopySegment* segments);
}
