using BlkTap.Xen.Internal;
using BlkTap.Xen.Interop;

namespace BlkTap.Xen;

/// <summary>
/// A tap serving real guests from dom0 (or a driver domain): the generic <see cref="XenbusBlockBackend"/> wired
/// to the real xenstore (<see cref="XenStore"/>), grant mapping (<see cref="GntdevGrantMapper"/>) and event
/// channels (<see cref="XenEventChannelFactory"/>), feeding a <see cref="TapRuntime"/> whose hooks are the chain.
/// </summary>
/// <remarks>
/// Threading: construct, then call <see cref="RunAsync"/> once; it starts watching xenstore and runs the runtime's
/// loop on a dedicated thread until cancelled. <see cref="Dispose"/> is safe from any thread after RunAsync ended
/// (or was never called). Handshake and ring work happen on the runtime's loop thread.
/// </remarks>
public sealed class XenDom0Backend : IDisposable
{
    private readonly XenStore _store;
    private readonly GntdevGrantMapper _mapper;
    private int _disposed;

    /// <summary>Opens xenstore and gntdev and creates the xenbus backend (not yet watching).</summary>
    /// <exception cref="XenNotAvailableException">This is not a Xen dom0 (a device node or library is missing).</exception>
    /// <exception cref="XenInteropException">A device exists but cannot be opened (e.g. not root).</exception>
    public XenDom0Backend(TapRuntime runtime, XenDom0BackendOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(runtime);
        Options = options ?? new XenDom0BackendOptions();
        Runtime = runtime;
        var problem = Unavailable();
        if (problem != null) throw new XenNotAvailableException(problem);
        _store = new XenStore();
        try
        {
            _mapper = new GntdevGrantMapper();
        }
        catch
        {
            _store.Dispose();
            throw;
        }
        Backend = new XenbusBlockBackend(runtime, _store, _mapper, new XenEventChannelFactory(), new XenbusBackendOptions
        {
            BackendDomain = Options.BackendDomain,
            DeviceType = Options.DeviceType,
            MaxRingPageOrder = Options.MaxRingPageOrder,
        });
        Sweeper = new DeadFrontendSweeper(runtime, _store, Options.BackendDomain, Backend.Root);
    }

    /// <summary>The settings.</summary>
    public XenDom0BackendOptions Options { get; }

    /// <summary>The tap.</summary>
    public TapRuntime Runtime { get; }

    /// <summary>The xenbus backend (its <see cref="XenbusBlockBackend.Root"/> is the watched directory).</summary>
    public XenbusBlockBackend Backend { get; }

    /// <summary>Removes the backend directories of guests that died (nobody else removes a vbd3 directory that libxl did not write).</summary>
    public DeadFrontendSweeper Sweeper { get; }

    /// <summary>
    /// Null when this machine can run the backend; otherwise one line starting "Xen is not available: " naming
    /// the missing piece (xenstore, /dev/xen/gntdev, /dev/xen/evtchn, libxenstore.so.4, libxenevtchn.so.1).
    /// Never throws; safe from any thread.
    /// </summary>
    public static string? Unavailable()
    {
        try
        {
            XenPlatform.RequireXenStore();
            XenPlatform.RequireDevice(GntdevIoctls.DevicePath, "xen-gntdev");
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
    /// Starts watching <c>/local/domain/&lt;be&gt;/backend/&lt;type&gt;</c> and runs the runtime's loop until
    /// <paramref name="cancellationToken"/> fires; then closes every device (each frontend sees Closed) and
    /// lets the loop finish that work before returning.
    /// </summary>
    public async Task RunAsync(CancellationToken cancellationToken)
    {
        using var stop = new CancellationTokenSource();
        var loop = Runtime.RunAsync(stop.Token);
        Backend.Start();
        Sweeper.Start();
        try
        {
            await Task.Delay(Timeout.Infinite, cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) { }
        var drained = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Sweeper.Dispose();
        Backend.Dispose();
        Runtime.Post(() => drained.TrySetResult());
        await Task.WhenAny(drained.Task, Task.Delay(TimeSpan.FromSeconds(5))).ConfigureAwait(false);
        stop.Cancel();
        await loop.ConfigureAwait(false);
    }

    /// <summary>Closes xenstore and gntdev. Idempotent.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        Sweeper.Dispose();
        Backend.Dispose();
        _mapper.Dispose();
        _store.Dispose();
    }
}
