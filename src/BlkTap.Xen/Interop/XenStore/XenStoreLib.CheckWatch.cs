using System.Runtime.InteropServices;

namespace BlkTap.Xen.Interop;

internal static partial class XenStoreLib
{
    /// <summary>
    /// <c>char **xs_check_watch(struct xs_handle *h);</c> the next queued event without blocking, or NULL with
    /// errno EAGAIN when none is queued. Free the vector once.
    /// </summary>
    [LibraryImport(XenLibraries.XenStore, EntryPoint = "xs_check_watch", SetLastError = true)]
    public static partial nint CheckWatch(SafeXenStoreHandle h);
}
