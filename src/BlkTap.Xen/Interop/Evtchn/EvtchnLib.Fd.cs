using System.Runtime.InteropServices;

namespace BlkTap.Xen.Interop;

internal static partial class EvtchnLib
{
    /// <summary><c>int xenevtchn_fd(xenevtchn_handle *xce);</c> readable when a port is pending (owned by the library).</summary>
    [LibraryImport(XenLibraries.XenEvtchn, EntryPoint = "xenevtchn_fd", SetLastError = true)]
    public static partial int Fd(SafeEvtchnHandle h);
}
