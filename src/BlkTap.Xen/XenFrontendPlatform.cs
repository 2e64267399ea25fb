using System.Globalization;
using BlkTap.Xen.Internal;
using BlkTap.Xen.Interop;

namespace BlkTap.Xen;

/// <summary>
/// Builds the <see cref="BlockFrontendPlatform"/> of the Xen domain this process runs in (normally dom0): the real
/// xenstore (<see cref="XenStore"/>), event channels offered through libxenevtchn (<see cref="XenEventChannelFactory"/>)
/// and pages granted through gntalloc (<see cref="GntallocGrantIssuer"/>), for a block frontend in user space whose
/// backend is the kernel's xen-blkback or a <see cref="XenbusBlockBackend"/>.
/// </summary>
/// <remarks>Threading: both members are safe to call from any thread; each <see cref="Open"/> opens its own
/// connections.</remarks>
public static class XenFrontendPlatform
{
    /// <summary>
    /// Null when this machine can run a frontend; otherwise one line starting "Xen is not available: " naming the
    /// missing piece (xenstore, /dev/xen/gntalloc, /dev/xen/evtchn, libxenstore.so.4, libxenevtchn.so.1).
    /// Never throws.
    /// </summary>
    public static string? Unavailable()
    {
        try
        {
            XenPlatform.RequireXenStore();
            XenPlatform.RequireDevice(GntallocIoctls.DevicePath, GntallocIoctls.Module);
            XenPlatform.RequireDevice(EvtchnIoctls.DevicePath, "xen-evtchn");
            XenPlatform.RequireLibrary(XenLibraries.XenStore, "libxenstore4");
            XenPlatform.RequireLibrary(XenLibraries.XenEvtchn, "libxenevtchn1");
            return null;
        }
        catch (XenNotAvailableException ex)
        {
            return ex.Message;
        }
    }

    /// <summary>
    /// Opens xenstore and gntalloc and returns the platform. <see cref="BlockFrontendPlatform.DomainId"/> is read from
    /// this domain's xenstore node <c>domid</c>, 0 when it is absent. Dispose <paramref name="lifetime"/> (from any
    /// thread, once the frontend is done) to close xenstore and gntalloc; pages still granted stay valid until they
    /// are disposed themselves.
    /// </summary>
    /// <exception cref="XenNotAvailableException">This is not a Xen domain, or a device node or library is missing
    /// (the message names it; see <see cref="Unavailable"/>).</exception>
    /// <exception cref="XenInteropException">A device exists but cannot be opened (e.g. EACCES: not root), or xenstore
    /// failed.</exception>
    /// <exception cref="InvalidDataException">The <c>domid</c> node holds no domain id.</exception>
    public static BlockFrontendPlatform Open(out IDisposable lifetime)
    {
        var problem = Unavailable();
        if (problem != null) throw new XenNotAvailableException(problem);
        var store = new XenStore();
        GntallocGrantIssuer? grants = null;
        try
        {
            ushort domainId = ParseDomainId(ReadOwnDomainId(store));
            grants = GntallocGrantIssuer.Open();
            lifetime = new Lifetime(grants, store);
            return new BlockFrontendPlatform(domainId, store, new XenEventChannelFactory(), grants);
        }
        catch
        {
            grants?.Dispose();
            store.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Like <see cref="Open"/>, for a host that may never run a frontend (<c>blktap xen serve</c>, whose chain may
    /// have no <c>vbd</c> tap): it needs only xenstore; gntalloc is opened at the first grant, and a missing
    /// /dev/xen/gntalloc is then a grant failure naming the module, not a start-up failure.
    /// </summary>
    /// <exception cref="XenNotAvailableException">xenstore or its library is missing.</exception>
    /// <exception cref="XenInteropException">xenstore failed.</exception>
    public static BlockFrontendPlatform OpenLazily(out IDisposable lifetime)
    {
        XenPlatform.RequireXenStore();
        XenPlatform.RequireLibrary(XenLibraries.XenStore, "libxenstore4");
        var store = new XenStore();
        var grants = new GntallocGrantIssuer();
        try
        {
            ushort domainId = ParseDomainId(ReadOwnDomainId(store));
            lifetime = new Lifetime(grants, store);
            return new BlockFrontendPlatform(domainId, store, new XenEventChannelFactory(), grants);
        }
        catch
        {
            grants.Dispose();
            store.Dispose();
            throw;
        }
    }

    /// <summary>The value of this domain's <c>domid</c> node, or null when it is absent or cannot be read.</summary>
    private static string? ReadOwnDomainId(XenStore store)
    {
        // NOTE: xen tools/helpers/xen-init-dom0.c writes /local/domain/0/domid = "0" and libxl writes
        // /local/domain/<N>/domid for every guest; relative "domid" names our own. A xenstored that refuses a
        // relative path over its socket (dom0 only) leaves null: that caller is dom0.
        try { return store.ReadRelative("domid"); }
        catch (XenInteropException) { return null; }
    }

    /// <summary>Parses the <c>domid</c> node: null (absent) is 0, otherwise a decimal 0..65535.</summary>
    /// <exception cref="InvalidDataException"><paramref name="value"/> is not a decimal domain id.</exception>
    internal static ushort ParseDomainId(string? value)
    {
        if (value is null) return 0;
        if (ushort.TryParse(value.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var id)) return id;
        throw new InvalidDataException($"xenstore node 'domid' holds '{value}', not a domain id");
    }

    /// <summary>Closes the grant issuer then xenstore. Idempotent; safe from any thread.</summary>
    private sealed class Lifetime(GntallocGrantIssuer grants, XenStore store) : IDisposable
    {
        private int _disposed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
            grants.Dispose();
            store.Dispose();
        }
    }
}
