using System.Runtime.InteropServices;

namespace BlkTap.Xen.Interop;

internal static partial class EvtchnLib
{
    /// <summary><c>xenevtchn_port_or_error_t xenevtchn_bind_unbound_port(xenevtchn_handle *xce, uint32_t domid);</c>
    /// a new local port that <paramref name="domid"/> may bind to, or -1 with errno.</summary>
    [LibraryImport(XenLibraries.XenEvtchn, EntryPoint = "xenevtchn_bind_unbound_port", SetLastError = true)]
    public static partial int BindUnboundPort(SafeEvtchnHandle h, uint domid);
}
