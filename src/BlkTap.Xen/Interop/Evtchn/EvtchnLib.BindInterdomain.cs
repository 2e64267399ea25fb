using System.Runtime.InteropServices;

namespace BlkTap.Xen.Interop;

internal static partial class EvtchnLib
{
    /// <summary><c>xenevtchn_port_or_error_t xenevtchn_bind_interdomain(xenevtchn_handle *xce, uint32_t domid,
    /// evtchn_port_t remote_port);</c> the local port, or -1 with errno.</summary>
    [LibraryImport(XenLibraries.XenEvtchn, EntryPoint = "xenevtchn_bind_interdomain", SetLastError = true)]
    public static partial int BindInterdomain(SafeEvtchnHandle h, uint domid, uint remotePort);
}
