using System.Runtime.InteropServices;

namespace BlkTap.Xen.Interop;

internal static partial class GntTabLib
{
    /// <summary><c>int xengnttab_close(xengnttab_handle *xgt);</c></summary>
    [LibraryImport(XenLibraries.XenGntTab, EntryPoint = "xengnttab_close", SetLastError = true)]
    public static partial int Close(nint handle);
}
