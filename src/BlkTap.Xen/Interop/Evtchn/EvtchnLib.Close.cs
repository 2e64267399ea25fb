using System.Runtime.InteropServices;

namespace BlkTap.Xen.Interop;

internal static partial class EvtchnLib
{
    /// <summary><c>int xenevtchn_close(xenevtchn_handle *xce);</c></summary>
    [LibraryImport(XenLibraries.XenEvtchn, EntryPoint = "xenevtchn_close", SetLastError = true)]
    public static partial int Close(nint handle);
}
