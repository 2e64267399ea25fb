using System.Runtime.InteropServices;

namespace BlkTap.Xen.Interop;

internal static partial class EvtchnLib
{
    /// <summary><c>int xenevtchn_notify(xenevtchn_handle *xce, evtchn_port_t port);</c></summary>
    [LibraryImport(XenLibraries.XenEvtchn, EntryPoint = "xenevtchn_notify", SetLastError = true)]
    public static partial int Notify(SafeEvtchnHandle h, uint port);
}
