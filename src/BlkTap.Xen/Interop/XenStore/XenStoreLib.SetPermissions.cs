using System.Runtime.InteropServices;

namespace BlkTap.Xen.Interop;

/// <summary><c>struct xs_permissions</c> from xenstore_lib.h: id @0, perms @4; 8 bytes.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct XsPermissionsNative
{
    public uint Id;
    public uint Perms;
}

internal static partial class XenStoreLib
{
    /// <summary><c>bool xs_set_permissions(struct xs_handle *h, xs_transaction_t t, const char *path,
    /// struct xs_permissions *perms, unsigned int num_perms);</c></summary>
    [LibraryImport(XenLibraries.XenStore, EntryPoint = "xs_set_permissions", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    [return: MarshalAs(UnmanagedType.U1)]
    public static unsafe partial bool SetPermissions(SafeXenStoreHandle h, uint transaction, string path, XsPermissionsNative* perms, uint count);
}
