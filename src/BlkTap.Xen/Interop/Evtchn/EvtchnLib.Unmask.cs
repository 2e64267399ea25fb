using System.Runtime.InteropServices;

namespace BlkTap.Xen.Interop;

internal static partial class EvtchnLib
{
    /// <summary><c>int xenevtchn_unmask(xenevtchn_handle *xce, evtchn_port_t port);</c></summary>
    [LibraryImport(XenLibraries.XenEvtchn, EntryPoint = "xenevtchn_unmask", SetLastError = true)]
    public static partial int Unmask(SafeEvtchnHandle h, uint port);
}
