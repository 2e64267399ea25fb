using System.Runtime.InteropServices;

namespace BlkTap.Xen.Interop;

internal static partial class XenStoreLib
{
    /// <summary><c>void xs_close(struct xs_handle *xsh);</c> (NULL ok).</summary>
    [LibraryImport(XenLibraries.XenStore, EntryPoint = "xs_close")]
    public static partial void Close(nint handle);
}
