using System.Runtime.InteropServices;

namespace BlkTap.Xen.Interop;

internal static partial class XenStoreLib
{
    /// <summary><c>int xs_fileno(struct xs_handle *h);</c> a descriptor readable while watch events are queued
    /// (owned by the library: never close it).</summary>
    [LibraryImport(XenLibraries.XenStore, EntryPoint = "xs_fileno", SetLastError = true)]
    public static partial int Fileno(SafeXenStoreHandle h);
}
