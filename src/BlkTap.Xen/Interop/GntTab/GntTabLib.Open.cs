using System.Runtime.InteropServices;

namespace BlkTap.Xen.Interop;

/// <summary>Bindings for Debian's libxengnttab.so.1 (xengnttab.h).</summary>
internal static partial class GntTabLib
{
    /// <summary><c>xengnttab_handle *xengnttab_open(struct xentoollog_logger *logger, unsigned open_flags);</c>
    /// NULL logger means the library's default (stderr) logger.</summary>
    [LibraryImport(XenLibraries.XenGntTab, EntryPoint = "xengnttab_open", SetLastError = true)]
    public static partial SafeGntTabHandle Open(nint logger, uint openFlags);
}
