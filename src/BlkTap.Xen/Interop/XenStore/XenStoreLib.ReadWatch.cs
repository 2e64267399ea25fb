using System.Runtime.InteropServices;

namespace BlkTap.Xen.Interop;

internal static partial class XenStoreLib
{
    /// <summary>
    /// <c>char **xs_read_watch(struct xs_handle *h, unsigned int *num);</c> blocks for the next event; the vector
    /// is indexed by <see cref="XsWire.XS_WATCH_PATH"/> / <see cref="XsWire.XS_WATCH_TOKEN"/>; free it once.
    /// </summary>
    [LibraryImport(XenLibraries.XenStore, EntryPoint = "xs_read_watch", SetLastError = true)]
    public static partial nint ReadWatch(SafeXenStoreHandle h, out uint count);
}
