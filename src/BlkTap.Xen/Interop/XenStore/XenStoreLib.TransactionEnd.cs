using System.Runtime.InteropServices;

namespace BlkTap.Xen.Interop;

internal static partial class XenStoreLib
{
    /// <summary><c>bool xs_transaction_end(struct xs_handle *h, xs_transaction_t t, bool abort);</c>
    /// false with errno EAGAIN when the transaction conflicted and must be retried.</summary>
    [LibraryImport(XenLibraries.XenStore, EntryPoint = "xs_transaction_end", SetLastError = true)]
    [return: MarshalAs(UnmanagedType.U1)]
    public static partial bool TransactionEnd(SafeXenStoreHandle h, uint transaction, [MarshalAs(UnmanagedType.U1)] bool abort);
}
