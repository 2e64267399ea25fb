using System.Runtime.InteropServices;
using BlkTap.Linux.Interop;

namespace BlkTap.Xen.Interop;

internal static partial class XenStoreLib
{
    /// <summary>
    /// <c>void *xs_read(struct xs_handle *h, xs_transaction_t t, const char *path, unsigned int *len);</c>
    /// A malloced, NUL-terminated value (free with <see cref="Libc.Free"/>), or NULL with errno.
    /// </summary>
    [LibraryImport(XenLibraries.XenStore, EntryPoint = "xs_read", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    public static partial nint Read(SafeXenStoreHandle h, uint transaction, string path, out uint length);
}
