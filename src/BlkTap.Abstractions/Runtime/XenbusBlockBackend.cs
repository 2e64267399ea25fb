using System.Globalization;

namespace BlkTap;

/// <summary>
/// The backend half of the xenbus block-device handshake, written only against the platform
/// contracts so the same code serves emulated domains and a real dom0: watches
/// <c>/local/domain/&lt;be&gt;/backend/&lt;type&gt;</c>, attaches a <see cref="RingSession"/> per device
/// (the Attach control event carries <c>params</c> as the image identifier), publishes the disk
/// (<c>sectors</c>, <c>sector-size</c>, <c>physical-sector-size</c>, <c>info</c>, features, discard
/// geometry, <c>hotplug-status</c>=connected) and InitWait, connects the ring when the frontend is
/// Initialised (one ring, or one per queue when the frontend writes <c>multi-queue-num-queues</c>, up to
/// <c>multi-queue-max-queues</c>; persistent grants when both ends write <c>feature-persistent</c>=1, see
/// <see cref="XenbusBackendOptions"/>), follows the frontend to Closing/Closed, and, like blkback, goes back to InitWait
/// with a fresh session when a closed frontend returns to Initialising (unless <c>online</c> is 0).
/// </summary>
/// <remarks>
/// Threading: all handshake work runs on the runtime's loop (watch callbacks post to it). Every value
/// a frontend writes is validated; a bad one is reported and closes that device only. Whenever the backend
/// itself closes a device it first writes the reason to <c>hotplug-error</c> in the backend directory
/// (with <c>hotplug-status</c>=error for a failure), where the frontend and the toolstack can read it; the
/// node is removed when the device next connects.
/// </remarks>
public sealed partial class XenbusBlockBackend : IDisposable
{
    private readonly TapRuntime _runtime;
    private readonly IXenStore _store;
    private readonly IGrantMapper _mapper;
    private readonly IEventChannelFactory _channels;
    private readonly XenbusBackendOptions _options;
    private readonly Dictionary<string, Device> _devices = new(StringComparer.Ordinal);
    private IDisposable? _watch;
    private bool _disposed;

    /// <summary>Creates a backend; call <see cref="Start"/> to begin watching.</summary>
    public XenbusBlockBackend(TapRuntime runtime, IXenStore store, IGrantMapper mapper, IEventChannelFactory channels, XenbusBackendOptions? options = null)
    {
        _runtime = runtime;
        _store = store;
        _mapper = mapper;
        _channels = channels;
        _options = options ?? new XenbusBackendOptions();
        if (_options.MaxRingPageOrder is < 0 or > BlkifConstants.MaxRingPageOrder)
            throw new ArgumentOutOfRangeException(nameof(options), $"MaxRingPageOrder must be 0..{BlkifConstants.MaxRingPageOrder}");
        if (_options.MaxQueues is < 1 or > XenbusBackendOptions.MaxQueuesLimit)
            throw new ArgumentOutOfRangeException(nameof(options), $"MaxQueues must be 1..{XenbusBackendOptions.MaxQueuesLimit}");
        if (_options.MaxPersistentGrants < 1)
            throw new ArgumentOutOfRangeException(nameof(options), "MaxPersistentGrants must be at least 1");
    }

    /// <summary>The xenstore directory watched for devices.</summary>
    public string Root => $"/local/domain/{_options.BackendDomain}/backend/{_options.DeviceType}";

    /// <summary>Starts watching for devices. Safe from any thread.</summary>
    public void Start()
    {
        var rescan = new WatchReaction(this, Rescan);
        _watch = _store.Watch(Root, _ => rescan.Fire());
    }

    /// <summary>Loop thread: the open sessions of this backend, by backend path.</summary>
    public IReadOnlyDictionary<string, RingSession> Sessions =>
        _devices.Where(d => d.Value.Session is { IsOpen: true }).ToDictionary(d => d.Key, d => d.Value.Session!);

    private void Rescan()
    {
        if (_disposed) return;
        try { RescanCore(); }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            _runtime.Report(TapDiagnosticLevel.Error, null, $"{Root}: cannot list devices: {ex.Message}");
        }
    }

    private void RescanCore()
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var fe in _store.Directory(Root))
        {
            foreach (var devid in _store.Directory($"{Root}/{fe}"))
            {
                var path = $"{Root}/{fe}/{devid}";
                seen.Add(path);
                if (!_devices.ContainsKey(path)) Discover(path, fe, devid);
            }
        }
        foreach (var gone in _devices.Keys.Where(k => !seen.Contains(k)).ToList())
        {
            _devices[gone].Close("the toolstack removed the backend directory", writeState: false);
            _devices.Remove(gone);
        }
    }

    private void Discover(string path, string feText, string devidText)
    {
        var device = new Device(this, path);
        _devices.Add(path, device);
        if (!ushort.TryParse(feText, NumberStyles.None, CultureInfo.InvariantCulture, out var feDomid) ||
            !uint.TryParse(devidText, NumberStyles.None, CultureInfo.InvariantCulture, out _))
        {
            device.Fail($"backend path {path} does not name a frontend domain and device number");
            return;
        }
        var frontend = _store.Read($"{path}/frontend");
        // NOTE: a toolstack that does not use a transaction writes the backend directory node by node;
        // its 'state' (Initialising) comes last, so wait for it before reading params and mode.
        if (string.IsNullOrEmpty(frontend) || !frontend.StartsWith('/') || _store.Read($"{path}/state") == null)
        {
            _devices.Remove(path); // not ready: the watch brings us back when the next node is written
            return;
        }
        device.Start(feDomid, frontend);
    }

    /// <summary>Stops watching and closes every session. Safe from any thread.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _watch?.Dispose();
        _runtime.Post(() =>
        {
            _disposed = true;
            foreach (var d in _devices.Values) d.Close("backend shutting down", writeState: true);
            _devices.Clear();
        });
    }

    private sealed class Device(XenbusBlockBackend owner, string path)
    {
        private const int MaxReasonLength = 1024; // xenstore values are small (XENSTORE_PAYLOAD_MAX 4096 with the path)

        private IDisposable? _frontendWatch;
        private string _frontend = "";
        private ushort _feDomid;
        private bool _armed;
        private bool _connected;
        private bool _removed;
        private bool _frontendSeen;
        private bool _waitingForFrontend;

        public RingSession? Session { get; private set; }

        private IXenStore Store => owner._store;
        private TapRuntime Runtime => owner._runtime;

        public void Start(ushort feDomid, string frontend)
        {
            _frontend = frontend;
            _feDomid = feDomid;
            try
            {
                // NOTE: Linux's xenbus probes a device only once its other end exists (xenbus_read_otherend_details,
                // "missing other end"): InitWait is written only after the frontend's state has been seen, so whoever
                // waits for InitWait and then removes the frontend's directory finds the removal reported, never
                // mistaken for a frontend not yet written (a toolstack without a transaction writes the backend's
                // directory first).
                _frontendSeen = Store.Read($"{frontend}/state") != null;
                if (_frontendSeen)
                {
                    Arm();
                    if (_removed) return;
                }
                else _waitingForFrontend = true;
                var changed = new WatchReaction(owner, OnFrontendChanged);
                _frontendWatch = Store.Watch($"{frontend}/state", _ => changed.Fire());
                // The state may have been written between the read and the watch: look again, on the loop.
                if (_waitingForFrontend) changed.Fire();
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                // NOTE: a store error (a 'frontend' value that is not a valid path, a node we may not read) must
                // not escape into the loop: it is reported and closes this device only.
                Fail($"xenstore refused the device's nodes: {ex.Message}");
            }
        }

        /// <summary>Attaches a fresh session and publishes the disk, then InitWait (blkback's backend_probe + backend_changed).</summary>
        private void Arm()
        {
            var imageId = Store.Read($"{path}/params");
            // NOTE: xen-blkback xenbus.c backend_changed(): a missing 'mode' is fatal ("reading mode"); the disk is
            // writable only if 'mode' contains 'w' (strchr(be->mode, 'w')), so "r", "ro" and "" are read-only.
            var mode = Store.Read($"{path}/mode");
            if (mode == null) { Fail("the toolstack wrote no 'mode' node (expected \"w\" or \"r\")"); return; }
            Session = new RingSession($"dom{_feDomid}/{path[(path.LastIndexOf('/') + 1)..]}", _feDomid, imageId, owner._mapper);
            _armed = true;
            _connected = false;
            Runtime.AttachSession(Session);
            if (!Session.IsOpen) { Fail("a control hook refused the attach"); return; }
            if (!mode.Contains('w')) Session.ReadOnly = true;
            if (Session.Sectors == 0)
                Runtime.Report(TapDiagnosticLevel.Warning, Session, "no hook set the disk size at attach; the frontend sees a 0-sector disk");
            var inv = CultureInfo.InvariantCulture;
            Store.Write($"{path}/max-ring-page-order", owner._options.MaxRingPageOrder.ToString(inv));
            // NOTE: blkif.h "Multiple hardware queues/rings": the backend writes multi-queue-max-queues in the vbd's
            // directory (Linux blkback does so at probe, before InitWait, where xen-blkfront's negotiate_mq reads it).
            Store.Write($"{path}/multi-queue-max-queues", owner._options.MaxQueues.ToString(inv));
            // NOTE: blkif.h "feature-persistent" (backend side, 0/1, default 0): the backend can keep the frontend's
            // grants mapped. Used only if the frontend writes feature-persistent=1 in its own directory too.
            Store.Write($"{path}/feature-persistent", owner._options.FeaturePersistent ? "1" : "0");
            Store.Write($"{path}/sectors", Session.Sectors.ToString(inv));
            Store.Write($"{path}/sector-size", Session.SectorSize.ToString(inv));
            // NOTE: blkif.h "physical-sector-size" (optional, defaults to sector-size); blkback writes the device's
            // physical block size. Ours is the logical size: taps do not expose a larger internal block.
            Store.Write($"{path}/physical-sector-size", Session.SectorSize.ToString(inv));
            Store.Write($"{path}/info", ((uint)Session.Info).ToString(inv));
            Store.Write($"{path}/feature-flush-cache", Session.SupportsFlush ? "1" : "0");
            Store.Write($"{path}/feature-barrier", "1");
            Store.Write($"{path}/feature-discard", Session.SupportsDiscard ? "1" : "0");
            if (Session.SupportsDiscard)
            {
                // NOTE: blkif.h "discard-granularity"/"discard-alignment" in bytes, "discard-secure" 0/1 (xen-blkback
                // xen_blkbk_discard()). A tap discards any whole sector, so granularity is one logical sector.
                Store.Write($"{path}/discard-granularity", Session.SectorSize.ToString(inv));
                Store.Write($"{path}/discard-alignment", "0");
                Store.Write($"{path}/discard-secure", "0");
            }
            if (Runtime.Options.MaxIndirectSegments > 0)
                Store.Write($"{path}/feature-max-indirect-segments", Runtime.Options.MaxIndirectSegments.ToString(inv));
            // NOTE: libxl (libxl_device.c, device hotplug) waits for the backend's 'hotplug-status' = "connected",
            // which a hotplug script writes for blkback; a user-space backend has no script, so it writes it itself.
            Store.Write($"{path}/hotplug-status", "connected");
            SetState(XenbusState.InitWait);
        }

        private void OnFrontendChanged()
        {
            if (_removed || owner._disposed) return;
            try { FrontendChanged(); }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                Fail($"handshake failed: {ex.Message}");
            }
        }

        private void FrontendChanged()
        {
            var stateText = Store.Read($"{_frontend}/state");
            if (stateText == null)
            {
                // NOTE: a toolstack without a transaction writes the backend directory (state last) and only then
                // the frontend's (XenbusDevices.CreateVbd does, in that order): a backend that wakes up in between
                // finds no frontend state yet. Linux's xenbus does not probe such a device until the other end
                // exists (xenbus_read_otherend_details, "missing other end"); here the device waits for it, and
                // only a frontend that was there and went away closes the device.
                if (_armed && _frontendSeen) Fail("the frontend's directory disappeared");
                return;
            }
            _frontendSeen = true;
            if (_waitingForFrontend)
            {
                _waitingForFrontend = false;
                Arm();
                if (_removed || !_armed) return;
            }
            if (!int.TryParse(stateText, NumberStyles.None, CultureInfo.InvariantCulture, out var raw) || raw is < 0 or > 8)
            {
                if (_armed) Fail($"frontend state '{Trim(stateText)}' is not a XenbusState");
                return;
            }
            switch ((XenbusState)raw)
            {
                case XenbusState.Initialising:
                    // NOTE: xen-blkback frontend_changed(): Initialising while the backend is Closed means the
                    // frontend is reconnecting ("prepare for reconnect"): back to InitWait. The toolstack's
                    // online=0 (a detach in progress) means the device is going away instead.
                    if (!_armed && Store.Read($"{path}/online") != "0")
                    {
                        Runtime.Report(TapDiagnosticLevel.Information, null, $"{path}: the frontend is reconnecting");
                        Arm();
                    }
                    break;
                case XenbusState.Initialised:
                case XenbusState.Connected:
                    if (_armed && !_connected) Connect();
                    break;
                case XenbusState.Closing:
                    Disconnect(null, XenbusState.Closing);
                    break;
                case XenbusState.Closed:
                    Disconnect(null, XenbusState.Closed);
                    break;
            }
        }

        private void Connect()
        {
            var session = Session!;
            var protocolText = Store.Read($"{_frontend}/protocol");
            if (!BlkifProtocolNames.TryParse(protocolText, out var protocol)) { Fail($"unknown protocol '{Trim(protocolText)}'"); return; }
            int order = 0;
            var orderText = Store.Read($"{_frontend}/ring-page-order");
            if (orderText != null && (!int.TryParse(orderText, NumberStyles.None, CultureInfo.InvariantCulture, out order) || order > owner._options.MaxRingPageOrder))
            {
                Fail($"ring-page-order '{Trim(orderText)}' is not a number from 0 to {owner._options.MaxRingPageOrder}");
                return;
            }
            if (!ReadQueueCount(out int queues)) return;
            // NOTE: blkif.h: a frontend with one queue writes ring-ref and event-channel at the top of its directory
            // (whether or not it knows multi-queue); with N > 1 it writes them under queue-0 .. queue-(N-1) instead,
            // ring-page-order staying at the top (xen-blkback read_per_ring_refs reads each queue's directory).
            var refs = new uint[queues][];
            var ports = new uint[queues];
            for (int q = 0; q < queues; q++)
            {
                var dir = queues == 1 ? _frontend : $"{_frontend}/queue-{q.ToString(CultureInfo.InvariantCulture)}";
                string where = queues == 1 ? "" : $"queue-{q}/";
                refs[q] = new uint[1 << order];
                for (int i = 0; i < refs[q].Length; i++)
                {
                    var key = order == 0 ? "ring-ref" : $"ring-ref{i}";
                    var text = Store.Read($"{dir}/{key}");
                    if (!uint.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out refs[q][i]))
                    {
                        Fail($"{where}{key} '{Trim(text)}' is not a grant reference");
                        return;
                    }
                }
                var portText = Store.Read($"{dir}/event-channel");
                if (!uint.TryParse(portText, NumberStyles.None, CultureInfo.InvariantCulture, out ports[q]))
                {
                    Fail($"{where}event-channel '{Trim(portText)}' is not a port number");
                    return;
                }
            }
            // NOTE: blkif.h "feature-persistent" (frontend side): both ends must write 1 (xen-blkback connect_ring:
            // its own parameter and the frontend's node, read as an unsigned number, 0 when absent or unreadable).
            bool persistent = owner._options.FeaturePersistent &&
                uint.TryParse(Store.Read($"{_frontend}/feature-persistent"), NumberStyles.None, CultureInfo.InvariantCulture, out var fp) && fp != 0;
            var channels = new List<IEventChannel>(queues);
            for (int q = 0; q < queues; q++)
            {
                var channel = owner._channels.BindInterdomain(session.DomainId, ports[q], out var bindError);
                if (channel == null)
                {
                    foreach (var c in channels) c.Dispose();
                    Fail($"cannot bind {(queues == 1 ? "" : $"queue {q}'s ")}event channel {ports[q]}: {bindError}");
                    return;
                }
                channels.Add(channel);
            }
            var error = session.ConnectRings(refs, protocol, channels, persistent ? owner._options.MaxPersistentGrants : 0);
            if (error != null) { foreach (var c in channels) c.Dispose(); Fail(error); return; }
            _connected = true;
            Store.Remove($"{path}/hotplug-error"); // the reason of an earlier failure no longer applies
            SetState(XenbusState.Connected);
            Runtime.ConnectSession(session);
        }

        /// <summary>Reads the frontend's multi-queue-num-queues (1 when absent); false when it closed the device.</summary>
        private bool ReadQueueCount(out int queues)
        {
            queues = 1;
            var text = Store.Read($"{_frontend}/multi-queue-num-queues");
            if (text == null) return true;
            // NOTE: blkif.h: multi-queue-num-queues "must be greater than zero, and no more than the value reported by
            // the backend in multi-queue-max-queues"; xen-blkback connect_ring fails the device otherwise.
            int max = owner._options.MaxQueues;
            if (!int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out queues) || queues < 1 || queues > max)
            {
                Fail($"multi-queue-num-queues '{Trim(text)}' is not a number from 1 to multi-queue-max-queues ({max})");
                return false;
            }
            return true;
        }

        /// <summary>Reports an error and closes the device (Closing, then Closed); a later Initialising re-arms it.</summary>
        public void Fail(string reason)
        {
            Runtime.Report(TapDiagnosticLevel.Error, Session, $"{path}: {reason}");
            if (Session != null && Session.IsOpen) Runtime.CloseSession(Session, reason);
            _armed = false;
            _connected = false;
            if (_removed) return;
            try
            {
                PublishReason(reason, error: true);
                SetState(XenbusState.Closing);
                SetState(XenbusState.Closed);
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                Runtime.Report(TapDiagnosticLevel.Error, Session, $"{path}: cannot write the backend state: {ex.Message}");
            }
        }

        /// <summary>
        /// Writes why the backend closes the device where the frontend and the toolstack look, before the state
        /// change that makes them look.
        /// </summary>
        /// <remarks>
        /// NOTE: Xen's hotplug scripts report a failure as <c>hotplug-error</c> (a human-readable string) and
        /// <c>hotplug-status</c>=error in the backend directory (tools/hotplug/Linux/xen-hotplug-common.sh,
        /// fatal()), and libxl logs <c>hotplug-error</c> when a device does not come up (libxl_device.c). A
        /// user-space backend has no script, so it writes them itself. The node stays until the device connects.
        /// </remarks>
        private void PublishReason(string reason, bool error)
        {
            Store.Write($"{path}/hotplug-error", reason.Length > MaxReasonLength ? reason[..MaxReasonLength] + "..." : reason);
            if (error) Store.Write($"{path}/hotplug-status", "error");
        }

        private void Disconnect(string? reason, XenbusState state)
        {
            if (Session != null && Session.IsOpen) Runtime.CloseSession(Session, reason);
            _armed = false;
            _connected = false;
            if (ReadOwnState() != state) SetState(state);
        }

        /// <summary>The device is going away (directory removed, backend shutting down): close, stop watching.</summary>
        public void Close(string? reason, bool writeState)
        {
            if (_removed) return;
            _removed = true;
            _frontendWatch?.Dispose();
            if (Session != null && Session.IsOpen) Runtime.CloseSession(Session, reason);
            _armed = false;
            if (writeState)
            {
                try
                {
                    if (reason != null) PublishReason(reason, error: false);
                    SetState(XenbusState.Closing);
                    SetState(XenbusState.Closed);
                }
                catch (Exception ex) when (ex is not OutOfMemoryException)
                {
                    Runtime.Report(TapDiagnosticLevel.Warning, Session, $"{path}: cannot write the backend state: {ex.Message}");
                }
            }
        }

        private XenbusState ReadOwnState() =>
            int.TryParse(Store.Read($"{path}/state"), NumberStyles.None, CultureInfo.InvariantCulture, out var v) ? (XenbusState)v : XenbusState.Unknown;

        private void SetState(XenbusState state) =>
            Store.Write($"{path}/state", ((int)state).ToString(CultureInfo.InvariantCulture));

        private static string Trim(string? s) => s == null ? "(missing)" : s.Length > 40 ? s[..40] + "..." : s;
    }
}
