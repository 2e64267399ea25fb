namespace BlkTap.Xen.Interop;

/// <summary>The Xen libraries this assembly binds, by their Debian sonames (libc is bound by BlkTap.Linux).</summary>
internal static class XenLibraries
{
    /// <summary>Debian package libxenstore4.</summary>
    public const string XenStore = "libxenstore.so.4";

    /// <summary>Debian package libxengnttab1.</summary>
    public const string XenGntTab = "libxengnttab.so.1";

    /// <summary>Debian package libxenevtchn1.</summary>
    public const string XenEvtchn = "libxenevtchn.so.1";
}
