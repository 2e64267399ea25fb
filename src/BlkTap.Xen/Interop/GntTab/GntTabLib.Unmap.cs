using System.Runtime.InteropServices;

namespace BlkTap.Xen.Interop;

internal static partial class GntTabLib
{
    /// <summary><c>int xengnttab_unmap(xengnttab_handle *xgt, void *start_address, uint32_t count);</c></summary>
    [LibraryImport(XenLibraries.XenGntTab, EntryPoint = "xengnttab_unmap", SetLastError = true)]
    public static partial int Unmap(nint handle, nint startAddress, uint count);
}
