using System.Runtime.InteropServices;

namespace BlkTap.Xen.Interop;

internal static partial class XenStoreLib
{
    /// <summary><c>xs_transaction_t xs_transaction_start(struct xs_handle *h);</c> XBT_NULL (0) with errno on failure.</summary>
    [LibraryImport(XenLibraries.XenStore, EntryPoint = "xs_transaction_start", SetLastError = true)]
    public static partial uint TransactionStart(SafeXenStoreHandle h);
}
