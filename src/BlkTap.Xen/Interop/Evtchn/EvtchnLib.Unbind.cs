using System.Runtime.InteropServices;

namespace BlkTap.Xen.Interop;

internal static partial class EvtchnLib
{
    /// <summary><c>int xenevtchn_unbind(xenevtchn_handle *xce, evtchn_port_t port);</c></summary>
    [LibraryImport(XenLibraries.XenEvtchn, EntryPoint = "xenevtchn_unbind", SetLastError = true)]
    public static partial int Unbind(SafeEvtchnHandle h, uint port);
}
