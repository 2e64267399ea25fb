using System.Runtime.InteropServices;

namespace BlkTap.Xen.Interop;

internal static partial class GntTabLib
{
    /// <summary><c>void *xengnttab_map_domain_grant_refs(xengnttab_handle *xgt, uint32_t count, uint32_t domid,
    /// uint32_t *refs, int prot);</c> NULL with errno on failure; pages are contiguous.</summary>
    [LibraryImport(XenLibraries.XenGntTab, EntryPoint = "xengnttab_map_domain_grant_refs", SetLastError = true)]
    public static unsafe partial nint MapDomainGrantRefs(SafeGntTabHandle h, uint count, uint domid, uint* refs, int prot);
}
