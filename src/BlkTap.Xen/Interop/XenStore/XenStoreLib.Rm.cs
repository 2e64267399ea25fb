using System.Runtime.InteropServices;

namespace BlkTap.Xen.Interop;

internal static partial class XenStoreLib
{
    /// <summary><c>bool xs_rm(struct xs_handle *h, xs_transaction_t t, const char *path);</c> false on failure
    /// or when the node does not exist (errno ENOENT).</summary>
    [LibraryImport(XenLibraries.XenStore, EntryPoint = "xs_rm", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    [return: MarshalAs(UnmanagedType.U1)]
    public static partial bool Rm(SafeXenStoreHandle h, uint transaction, string path);
}
