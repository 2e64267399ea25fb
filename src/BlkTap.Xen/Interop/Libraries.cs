namespace BlkTap.Xen.Interop;

/// <summary>The native libraries this assembly binds, by their Debian sonames.</summary>
internal static class Libraries
{
    /// <summary>The C library (resolved by the runtime to libc.so.6 on glibc).</summary>
    public const string Libc = "libc";

    /// <summary>Debian package libxenstore4.</summary>
    public const string XenStore = "libxenstore.so.4";

    /// <summary>Debian package libxengnttab1.</summary>
    public const string XenGntTab = "libxengnttab.so.1";

    /// <summary>Debian package libxenevtchn1.</summary>
    public const string XenEvtchn = "libxenevtchn.so.1";
}
