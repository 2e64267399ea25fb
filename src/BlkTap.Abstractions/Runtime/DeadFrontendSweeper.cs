using System.Globalization;

namespace BlkTap;

/// <summary>
/// Removes the backend directories (<c>&lt;root&gt;/&lt;fe&gt;</c>) of frontend domains that no longer exist.
/// </summary>
/// <remarks>
/// <para>
/// Nobody else does it for a user-space backend: libxl removes, when a domain dies, only the device directories
/// it wrote itself (it keeps a list under <c>/libxl/&lt;domid&gt;/device</c>), so the <c>backend/vbd3/&lt;domid&gt;</c>
/// nodes that <c>blktap xen attach</c> wrote stayed behind after <c>xl destroy</c>, for ever, on the real Xen lab.
/// The serving process is the only long-lived party that knows them, so it sweeps them.
/// </para>
/// <para>
/// A domain counts as gone when <c>/local/domain/&lt;fe&gt;</c> no longer exists (the toolstack removes it when it
/// destroys the domain, before the hypervisor's <c>@releaseDomain</c> fires). Nothing is removed while the
/// backend's own <c>/local/domain/&lt;be&gt;</c> cannot be read (a store we cannot see is not a dead guest).
/// </para>
/// <para>
/// Threading: <see cref="Start"/> and <see cref="Dispose"/> are safe from any thread; sweeps run on the runtime's
/// loop (watch callbacks post to it), like every other handshake step of <see cref="XenbusBlockBackend"/>.
/// </para>
/// </remarks>
public sealed class DeadFrontendSweeper : IDisposable
{
    // NOTE: "@releaseDomain" is xenstored's special watch that fires whenever a domain is released
    // (xen/docs/misc/xenstore.txt, "WATCH"); it says no more than "some domain went away".
    private const string ReleaseDomain = "@releaseDomain";

    private readonly TapRuntime _runtime;
    private readonly IXenStore _store;
    private readonly ushort _backendDomain;
    private readonly string _root;
    private IDisposable? _watch;
    private volatile bool _disposed;

    /// <summary>Creates a sweeper for <paramref name="backendRoot"/> (for instance <c>/local/domain/0/backend/vbd3</c>).</summary>
    public DeadFrontendSweeper(TapRuntime runtime, IXenStore store, ushort backendDomain, string backendRoot)
    {
        ArgumentNullException.ThrowIfNull(runtime);
        ArgumentNullException.ThrowIfNull(store);
        ArgumentException.ThrowIfNullOrEmpty(backendRoot);
        _runtime = runtime;
        _store = store;
        _backendDomain = backendDomain;
        _root = backendRoot.TrimEnd('/');
    }

    /// <summary>Loop thread: how many frontend directories this sweeper removed so far.</summary>
    public int Removed { get; private set; }

    /// <summary>
    /// Watches <c>@releaseDomain</c>; the watch fires once at once, so directories left by guests that died
    /// while nothing was serving are swept at start too. Safe from any thread.
    /// </summary>
    public void Start() => _watch = _store.Watch(ReleaseDomain, _ => _runtime.Post(Sweep));

    /// <summary>Loop thread: removes the directory of every frontend domain that no longer exists.</summary>
    public void Sweep()
    {
        if (_disposed) return;
        try
        {
            if (_store.Read($"/local/domain/{_backendDomain}") == null) return;
            foreach (var fe in _store.Directory(_root))
            {
                if (!ushort.TryParse(fe, NumberStyles.None, CultureInfo.InvariantCulture, out var domid) || domid == _backendDomain) continue;
                if (_store.Read($"/local/domain/{domid}") != null) continue;
                if (!_store.Remove($"{_root}/{fe}")) continue;
                Removed++;
                _runtime.Report(TapDiagnosticLevel.Information, null, $"{_root}/{fe}: domain {domid} is gone; removed its backend directory");
            }
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            _runtime.Report(TapDiagnosticLevel.Warning, null, $"{_root}: cannot sweep the devices of dead domains: {ex.Message}");
        }
    }

    /// <summary>Stops watching. Idempotent; safe from any thread.</summary>
    public void Dispose()
    {
        _disposed = true;
        _watch?.Dispose();
    }
}
