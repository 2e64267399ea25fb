using System.Runtime.InteropServices;

namespace BlkTap.Xen.Interop;

/// <summary>Bindings for Debian's libxenevtchn.so.1 (xenevtchn.h).</summary>
internal static partial class EvtchnLib
{
    /// <summary><c>XENEVTCHN_NO_CLOEXEC</c>.</summary>
    public const uint XENEVTCHN_NO_CLOEXEC = 1 << 0;

    /// <summary><c>xenevtchn_handle *xenevtchn_open(struct xentoollog_logger *logger, unsigned int flags);</c></summary>
    [LibraryImport(XenLibraries.XenEvtchn, EntryPoint = "xenevtchn_open", SetLastError = true)]
    public static partial SafeEvtchnHandle Open(nint logger, uint flags);
}
