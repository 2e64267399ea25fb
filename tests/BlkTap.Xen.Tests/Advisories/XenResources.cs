namespace BlkTap.Xen.Tests.Advisories;

/// <summary>
/// What this process holds of Xen, counted by the kernel rather than by our own bookkeeping, so a leak that our
/// counters miss still shows: gntdev mappings (lines of <c>/proc/self/maps</c> backed by /dev/xen/gntdev) and
/// evtchn handles (descriptors open on /dev/xen/evtchn: libxenevtchn opens one per <see cref="XenEventChannel"/>).
/// </summary>
/// <remarks>Threading: any thread; a snapshot, racing with whatever maps or binds meanwhile.</remarks>
internal static class XenResources
{
    public static int GntdevMappings() => File.ReadLines("/proc/self/maps").Count(l => l.EndsWith("/dev/xen/gntdev", StringComparison.Ordinal));

    public static int EvtchnHandles() => Directory.EnumerateFileSystemEntries("/proc/self/fd").Count(fd =>
    {
        try { return new FileInfo(fd).LinkTarget == "/dev/xen/evtchn"; }
        catch (IOException) { return false; } // closed meanwhile
    });
}
