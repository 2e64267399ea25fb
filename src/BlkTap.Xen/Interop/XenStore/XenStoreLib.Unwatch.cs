using System.Runtime.InteropServices;

namespace BlkTap.Xen.Interop;

internal static partial class XenStoreLib
{
    /// <summary><c>bool xs_unwatch(struct xs_handle *h, const char *path, const char *token);</c></summary>
    [LibraryImport(XenLibraries.XenStore, EntryPoint = "xs_unwatch", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    [return: MarshalAs(UnmanagedType.U1)]
    public static partial bool Unwatch(SafeXenStoreHandle h, string path, string token);
}
