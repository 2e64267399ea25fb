using System.Runtime.InteropServices;

namespace BlkTap.Xen.Interop;

internal static partial class XenStoreLib
{
    /// <summary><c>bool xs_write(struct xs_handle *h, xs_transaction_t t, const char *path, const void *data, unsigned int len);</c></summary>
    [LibraryImport(XenLibraries.XenStore, EntryPoint = "xs_write", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    [return: MarshalAs(UnmanagedType.U1)]
    public static unsafe partial bool Write(SafeXenStoreHandle h, uint transaction, string path, byte* data, uint length);
}
