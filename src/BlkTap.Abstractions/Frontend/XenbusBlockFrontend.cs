using System.Globalization;

namespace BlkTap;

/// <summary>
/// A block frontend in user space (Linux xen-blkfront's role, run in dom0 or a driver domain): connects
/// to a vbd that any backend serves (the kernel's blkback, tapdisk, our own <see cref="XenbusBlockBackend"/>)
/// through the xenbus handshake, and sends it <see cref="TapRequest"/>s of a chain whose lower end it is.
/// The same code runs on a real dom0 (gntalloc, evtchn, xenstore) and in the emulator: only the
/// <see cref="BlockFrontendPlatform"/> differs.
/// </summary>
/// <remarks>
/// <para>Handshake (drivers/block/xen-blkfront.c, xen/include/public/io/blkif.h): write Initialising;
/// wait for the backend's InitWait; grant the ring (up to the backend's <c>max-ring-page-order</c>),
/// SHARED_RING_INIT, offer an unbound event channel; write <c>ring-ref</c> (or <c>ring-page-order</c> and
/// <c>ring-ref0..N-1</c>), <c>event-channel</c>, <c>protocol</c> and state Initialised; wait for the
/// backend's Connected; read <c>sectors</c>, <c>sector-size</c>, <c>info</c> and the features; write
/// Connected.</para>
/// <para>Data: the frontend owns bounce pages granted once (writable) at connect, a fixed set per ring
/// request id; a write's data is copied into them, a read's data out of them at its response. When the
/// backend offers <c>feature-max-indirect-segments</c>, a request of more than 11 pages goes as one
/// BLKIF_OP_INDIRECT request of up to <see cref="XenbusFrontendOptions.MaxIndirectSegments"/> pages (one
/// descriptor page); larger requests, and requests of more than 11 pages to a backend without indirect
/// support, are split into several ring requests, answered when all are (the first error wins). A write with FUA is sent
/// as a write followed by FLUSH_DISKCACHE when the backend offers flushes. A flush to a backend that
/// offers none is answered OK (such a backend completes writes durably); a discard to one without
/// <c>feature-discard</c> gets EOPNOTSUPP.</para>
/// <para>Failure: a backend that leaves Connected (Closing, Closed, its directory removed) or breaks the
/// ring protocol fails every request in flight or queued with ERROR, and every later one at once; the
/// frontend writes Closed. Nothing waits for a backend that is gone.</para>
/// <para>Threading: every public member may be called from any thread. State is guarded by one lock;
/// backend watches and event-channel notifications run on the platform's threads and take it. Responses
/// are delivered with <see cref="TapRuntime.InjectResponse"/>, so <see cref="Submit"/> may be called from
/// a hook that then returns <see cref="HookResult.Stolen"/>.</para>
/// </remarks>
public sealed partial class XenbusBlockFrontend : ITapBackend, IDisposable
{
    private enum Phase { Created, WaitingForBackend, Initialised, Connected, Closing, Closed, Failed }

    private readonly object _lock = new();
    private readonly BlockFrontendPlatform _platform;
    private readonly IXenStore _store;
    private readonly XenbusFrontendOptions _options;
    private readonly BlkifLayout _layout;
    private readonly TaskCompletionSource _connected = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _closed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly List<IDisposable> _deferredDisposals = new();
    private Phase _phase = Phase.Created;
    private string? _failure;
    private IDisposable? _watch;
    private IGrantedPages? _ringPages;
    private IEventChannel? _channel;
    private FrontRing? _ring;
    private bool _disposed;

    /// <summary>
    /// Creates the frontend for the vbd whose frontend directory is <paramref name="frontendPath"/>
    /// (for instance <c>/local/domain/0/device/vbd/51728</c>, written by <c>xl block-attach 0 ...</c>).
    /// Nothing happens until <see cref="ConnectAsync"/>.
    /// </summary>
    /// <exception cref="XenbusFrontendException">The directory has no valid <c>backend</c> / <c>backend-id</c> node.</exception>
    /// <exception cref="ArgumentException">An option is out of range.</exception>
    public XenbusBlockFrontend(BlockFrontendPlatform platform, string frontendPath, XenbusFrontendOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(platform);
        ArgumentException.ThrowIfNullOrEmpty(frontendPath);
        _options = options ?? new XenbusFrontendOptions();
        if (_options.MaxRingPageOrder is < 0 or > BlkifConstants.MaxRingPageOrder)
            throw new ArgumentException($"MaxRingPageOrder {_options.MaxRingPageOrder} is not in 0..{BlkifConstants.MaxRingPageOrder}", nameof(options));
        if (_options.Depth is < 1 or > 1024)
            throw new ArgumentException($"Depth {_options.Depth} is not in 1..1024", nameof(options));
        _platform = platform;
        _store = platform.Store;
        _layout = BlkifLayout.For(_options.Protocol);
        FrontendPath = frontendPath.TrimEnd('/');
        var tail = FrontendPath[(FrontendPath.LastIndexOf('/') + 1)..];
        DeviceId = ushort.TryParse(tail, NumberStyles.None, CultureInfo.InvariantCulture, out var id) ? id : (ushort)0;
        BackendPath = _store.Read(FrontendPath + "/backend")
            ?? throw new XenbusFrontendException($"{FrontendPath}/backend does not exist: there is no vbd there (create it first, for instance with 'xl block-attach 0 phy:/dev/loop0,xvdb,w')");
        var beText = _store.Read(FrontendPath + "/backend-id");
        if (!ushort.TryParse(beText, NumberStyles.None, CultureInfo.InvariantCulture, out var be) || be >= XenDomainIds.FirstReserved)
            throw new XenbusFrontendException($"{FrontendPath}/backend-id is missing or not a domain id ('{beText}')");
        BackendDomainId = be;
    }

    /// <summary>The frontend directory path of a vbd: <c>/local/domain/{domain}/device/vbd/{deviceId}</c>.</summary>
    public static string PathFor(ushort domain, int deviceId) =>
        string.Create(CultureInfo.InvariantCulture, $"/local/domain/{domain}/device/vbd/{deviceId}");

    /// <summary>The frontend's xenstore directory.</summary>
    public string FrontendPath { get; }

    /// <summary>The backend's xenstore directory (the frontend's <c>backend</c> node).</summary>
    public string BackendPath { get; }

    /// <summary>The backend's domain.</summary>
    public ushort BackendDomainId { get; }

    /// <summary>The vbd's device id (the last path element), used as the requests' handle.</summary>
    public ushort DeviceId { get; }

    /// <summary>Size in 512-byte sectors (valid once connected).</summary>
    public ulong Sectors { get; private set; }

    /// <summary>The backend's logical sector size (valid once connected).</summary>
    public uint SectorSize { get; private set; } = BlkifConstants.SectorSize;

    /// <summary>The backend's <c>info</c> flags (valid once connected).</summary>
    public VdiskInfo Info { get; private set; }

    /// <summary>Whether the backend serves the disk read-only.</summary>
    public bool IsReadOnly => (Info & VdiskInfo.ReadOnly) != 0;

    /// <summary>Whether the backend offers FLUSH_DISKCACHE (<c>feature-flush-cache</c>).</summary>
    public bool SupportsFlush { get; private set; }

    /// <summary>Whether the backend offers WRITE_BARRIER (<c>feature-barrier</c>).</summary>
    public bool SupportsBarrier { get; private set; }

    /// <summary>Whether the backend offers DISCARD (<c>feature-discard</c>).</summary>
    public bool SupportsDiscard { get; private set; }

    /// <summary>The backend's <c>feature-max-indirect-segments</c> (0: it takes no indirect requests).</summary>
    public uint MaxIndirectSegments { get; private set; }

    /// <summary>The ring's page order (valid once Initialised).</summary>
    public int RingPageOrder { get; private set; }

    /// <summary>Ring requests the frontend keeps in flight at most (valid once Initialised).</summary>
    public int Depth { get; private set; }

    /// <summary>The backend's xenbus state as xenstore holds it now (Unknown when its directory is gone).</summary>
    public XenbusState BackendState => ReadBackendState(out _);

    /// <summary>True while connected and not failed.</summary>
    public bool IsConnected { get { lock (_lock) return _phase == Phase.Connected; } }

    /// <summary>Why the frontend failed (backend gone, protocol broken), or null.</summary>
    public string? FailureReason { get { lock (_lock) return _failure; } }

    /// <summary>
    /// Starts the handshake. The task completes when the backend is Connected, or faults with a
    /// <see cref="XenbusFrontendException"/> naming why not. The caller bounds the wait (a backend that never
    /// answers is never given up on here). Calling it again returns the same task.
    /// </summary>
    public Task ConnectAsync()
    {
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_phase != Phase.Created) return _connected.Task;
            _phase = Phase.WaitingForBackend;
            WriteState(XenbusState.Initialising);
            _watch = _store.Watch(BackendPath + "/state", _ => OnBackendChanged());
        }
        OnBackendChanged(); // the backend may be waiting already
        return _connected.Task;
    }

    /// <summary>
    /// Closes the device (state Closing; the backend unmaps and answers what it has; then Closed) and
    /// completes when the backend has let go. Requests still queued or unanswered get ERROR.
    /// </summary>
    public Task DisconnectAsync()
    {
        bool finishNow = false;
        lock (_lock)
        {
            switch (_phase)
            {
                case Phase.Initialised:
                case Phase.Connected:
                    _phase = Phase.Closing;
                    FailQueued("the frontend is disconnecting");
                    WriteState(XenbusState.Closing);
                    finishNow = true; // re-check the backend's state below
                    break;
                case Phase.Closing:
                    break;
                default:
                    Teardown("the frontend disconnected");
                    if (_phase != Phase.Failed) { _phase = Phase.Closed; WriteState(XenbusState.Closed); }
                    _connected.TrySetException(new XenbusFrontendException($"{FrontendPath}: disconnected before connecting"));
                    _closed.TrySetResult();
                    break;
            }
        }
        RunDeferredDisposals();
        if (finishNow) OnBackendChanged();
        return _closed.Task;
    }

    /// <summary>
    /// Tears the frontend down at once, without waiting for the backend (a frontend that dies): every
    /// request queued or in flight gets ERROR, state goes to Closed, the watch, the event channel and
    /// the grants are released. Pages the backend still maps are freed by the platform when it unmaps
    /// them (gntalloc and the emulator both defer), so nothing is pulled from under it. For an orderly
    /// close that lets the backend finish first, await <see cref="DisconnectAsync"/> before this.
    /// </summary>
    public void Dispose()
    {
        IDisposable? watch;
        lock (_lock)
        {
            if (_disposed) return;
            _disposed = true;
            Teardown("the frontend was disposed");
            if (_phase is not (Phase.Closed or Phase.Failed or Phase.Created)) { _phase = Phase.Closed; WriteState(XenbusState.Closed); }
            _connected.TrySetException(new XenbusFrontendException($"{FrontendPath}: disposed before connecting"));
            _closed.TrySetResult();
            watch = _watch;
            _watch = null;
            if (_ringPages != null) { _deferredDisposals.Add(_ringPages); _ringPages = null; }
            if (_bounce != null) { _deferredDisposals.Add(_bounce); _bounce = null; }
            _ring = null;
        }
        watch?.Dispose();
        RunDeferredDisposals();
        _ = _connected.Task.Exception; // observed: nobody may have awaited it
    }

    /// <inheritdoc/>
    public override string ToString() => $"blkfront {FrontendPath} -> {BackendPath}";

    // ---------------------------------------------------------------- handshake

    private void OnBackendChanged()
    {
        lock (_lock)
        {
            if (_disposed) return;
            var backend = ReadBackendState(out bool exists);
            switch (_phase)
            {
                case Phase.WaitingForBackend:
                    // NOTE: a backend left Closed by an earlier frontend (xen-blkback's frontend_changed():
                    // "prepare for reconnect") goes back to InitWait when it sees Initialising: wait for that.
                    // The caller bounds the wait; BackendState tells what the backend last said.
                    if (backend == XenbusState.InitWait) TalkToBackend();
                    break;
                case Phase.Initialised:
                    if (backend == XenbusState.Connected) FinishConnect();
                    else if (backend is XenbusState.Closing or XenbusState.Closed || !exists)
                        FailConnect($"the backend {BackendPath} went to {(exists ? backend.ToString() : "nothing (removed)")} before connecting{BackendReason()}");
                    break;
                case Phase.Connected:
                    if (backend is XenbusState.Closing or XenbusState.Closed || !exists)
                        Fail($"the backend {BackendPath} {(exists ? "closed the device" : "was removed")}{BackendReason()}");
                    break;
                case Phase.Closing:
                    if (backend is XenbusState.Closing or XenbusState.Closed or XenbusState.Unknown || !exists)
                    {
                        Teardown("the frontend disconnected");
                        _phase = Phase.Closed;
                        WriteState(XenbusState.Closed);
                        _closed.TrySetResult();
                    }
                    break;
            }
        }
        RunDeferredDisposals();
    }

    private void TalkToBackend()
    {
        var inv = CultureInfo.InvariantCulture;
        // NOTE: blkif.h "max-ring-page-order": absent means a single-page ring published as "ring-ref".
        int offered = ReadInt(BackendPath + "/max-ring-page-order", 0);
        int order = Math.Clamp(Math.Min(_options.MaxRingPageOrder, offered), 0, BlkifConstants.MaxRingPageOrder);
        int pages = 1 << order;
        var ringPages = _platform.Grants.Grant(BackendDomainId, pages, writable: true, out var error);
        if (ringPages == null) { FailConnect($"cannot grant the ring to domain {BackendDomainId}: {error}"); return; }
        _ringPages = ringPages;
        _ring = new FrontRing(ringPages.Address, SharedRingLayout.BytesForOrder(order), _layout, initialiseShared: true);
        RingPageOrder = order;
        Depth = (int)Math.Min((uint)_options.Depth, _ring.Size);
        var channel = _platform.EventChannels.AllocateUnbound(BackendDomainId, out error);
        if (channel == null) { FailConnect($"cannot offer an event channel to domain {BackendDomainId}: {error}"); return; }
        _channel = channel;
        channel.SetHandler(OnEvent);
        if (order == 0) _store.Write(FrontendPath + "/ring-ref", ringPages.Reference(0).ToString(inv));
        else
        {
            // NOTE: blkif.h multi-page rings: "ring-page-order" plus "ring-ref%u" for each page, in order.
            _store.Write(FrontendPath + "/ring-page-order", order.ToString(inv));
            for (int i = 0; i < pages; i++) _store.Write(FrontendPath + "/ring-ref" + i.ToString(inv), ringPages.Reference(i).ToString(inv));
        }
        _store.Write(FrontendPath + "/event-channel", channel.LocalPort.ToString(inv));
        _store.Write(FrontendPath + "/protocol", _options.Protocol.ToName());
        _phase = Phase.Initialised;
        WriteState(XenbusState.Initialised);
        if (ReadBackendState(out _) == XenbusState.Connected) FinishConnect();
    }

    private void FinishConnect()
    {
        // NOTE: blkif.h "sectors" is in 512-byte units whatever "sector-size" says.
        var sectorsText = _store.Read(BackendPath + "/sectors");
        if (!ulong.TryParse(sectorsText, NumberStyles.None, CultureInfo.InvariantCulture, out var sectors))
        {
            FailConnect($"{BackendPath}/sectors is missing or not a number ('{sectorsText}')");
            return;
        }
        Sectors = sectors;
        SectorSize = (uint)ReadInt(BackendPath + "/sector-size", BlkifConstants.SectorSize);
        Info = (VdiskInfo)(uint)ReadInt(BackendPath + "/info", 0);
        SupportsFlush = ReadInt(BackendPath + "/feature-flush-cache", 0) != 0;
        SupportsBarrier = ReadInt(BackendPath + "/feature-barrier", 0) != 0;
        SupportsDiscard = ReadInt(BackendPath + "/feature-discard", 0) != 0;
        MaxIndirectSegments = (uint)ReadInt(BackendPath + "/feature-max-indirect-segments", 0);
        // NOTE: xen-blkback writes feature-max-indirect-segments only when it connects (xenbus.c connect()), so
        // the data pages are granted here, sized by what the backend offers.
        if (!AllocateBounce(out var error)) { FailConnect($"cannot grant data pages to domain {BackendDomainId}: {error}"); return; }
        _phase = Phase.Connected;
        WriteState(XenbusState.Connected);
        _connected.TrySetResult();
    }

    private void FailConnect(string reason)
    {
        var error = new XenbusFrontendException($"{FrontendPath}: cannot connect: {reason}");
        _failure = reason;
        Teardown(reason);
        _phase = Phase.Failed;
        WriteState(XenbusState.Closed);
        _connected.TrySetException(error);
        _closed.TrySetResult();
    }

    /// <summary>The backend went away or broke the protocol: answer everything with ERROR, close. Lock held.</summary>
    private void Fail(string reason)
    {
        if (_phase is Phase.Failed or Phase.Closed) return;
        _failure = reason;
        Teardown(reason);
        _phase = Phase.Failed;
        _store.Write(FrontendPath + "/error", reason);
        // NOTE: xen-blkfront.c blkback_changed(): a backend that closes takes the device away; the
        // frontend answers with Closed (xenbus_frontend_closed).
        WriteState(XenbusState.Closed);
        _connected.TrySetException(new XenbusFrontendException($"{FrontendPath}: {reason}"));
        _closed.TrySetResult();
    }

    /// <summary>Fails every request, stops events. Grants stay until Dispose (the backend may still map them). Lock held.</summary>
    private void Teardown(string reason)
    {
        FailInFlight(reason);
        FailQueued(reason);
        if (_channel != null)
        {
            _channel.SetHandler(null);
            _deferredDisposals.Add(_channel); // disposed outside the lock: its poll thread may be waiting for it
            _channel = null;
        }
    }

    private void RunDeferredDisposals()
    {
        IDisposable[] items;
        lock (_lock)
        {
            if (_deferredDisposals.Count == 0) return;
            items = _deferredDisposals.ToArray();
            _deferredDisposals.Clear();
        }
        foreach (var d in items) d.Dispose();
    }

    private void WriteState(XenbusState state) =>
        _store.Write(FrontendPath + "/state", ((int)state).ToString(CultureInfo.InvariantCulture));

    private XenbusState ReadBackendState(out bool exists)
    {
        var text = _store.Read(BackendPath + "/state");
        exists = text != null;
        return int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var s) && s is >= 0 and <= 8 ? (XenbusState)s : XenbusState.Unknown;
    }

    private int ReadInt(string path, int fallback) =>
        int.TryParse(_store.Read(path), NumberStyles.None, CultureInfo.InvariantCulture, out var v) && v >= 0 ? v : fallback;

    private string BackendReason()
    {
        var reason = _store.Read(BackendPath + "/hotplug-error");
        return string.IsNullOrEmpty(reason) ? "" : ": " + reason;
    }
}
