using System.Runtime.InteropServices;

namespace BlkTap.Xen.Interop;

internal static partial class XenStoreLib
{
    /// <summary>
    /// <c>char **xs_directory(struct xs_handle *h, xs_transaction_t t, const char *path, unsigned int *num);</c>
    /// One malloced block holding the pointer array and the strings: free the array pointer once.
    /// </summary>
    // NOTE: xenstore.h: "Returns a malloced array: call free() on it after use." The strings live in the same block.
    [LibraryImport(XenLibraries.XenStore, EntryPoint = "xs_directory", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    public static partial nint Directory(SafeXenStoreHandle h, uint transaction, string path, out uint count);
}
