using System.Runtime.InteropServices;

namespace BlkTap.Xen.Interop;

/// <summary>Bindings for Debian's libxenstore.so.4 (xenstore.h). The handle is thread-safe inside the library.</summary>
internal static partial class XenStoreLib
{
    /// <summary><c>XBT_NULL</c>: no transaction.</summary>
    // NOTE: xenstore.h #define XBT_NULL 0.
    public const uint XBT_NULL = 0;

    /// <summary><c>XS_OPEN_READONLY</c>.</summary>
    public const ulong XS_OPEN_READONLY = 1UL << 0;

    /// <summary><c>XS_OPEN_SOCKETONLY</c>.</summary>
    public const ulong XS_OPEN_SOCKETONLY = 1UL << 1;

    /// <summary><c>XS_UNWATCH_FILTER</c>: after xs_unwatch no stale events with that token are delivered.</summary>
    public const ulong XS_UNWATCH_FILTER = 1UL << 2;

    /// <summary><c>struct xs_handle *xs_open(unsigned long flags);</c> NULL with errno on failure.</summary>
    [LibraryImport(XenLibraries.XenStore, EntryPoint = "xs_open", SetLastError = true)]
    public static partial SafeXenStoreHandle Open(nuint flags);
}
