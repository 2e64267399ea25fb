using System.Runtime.InteropServices;

namespace BlkTap.Xen.Interop;

internal static partial class EvtchnLib
{
    /// <summary><c>xenevtchn_port_or_error_t xenevtchn_pending(xenevtchn_handle *xce);</c> the next pending port
    /// (now masked until <see cref="Unmask"/>), or -1 with errno.</summary>
    [LibraryImport(XenLibraries.XenEvtchn, EntryPoint = "xenevtchn_pending", SetLastError = true)]
    public static partial int Pending(SafeEvtchnHandle h);
}
