using System.Globalization;

namespace BlkTap;

/// <summary>
/// The backend half of the xenbus block-device handshake, written only against the platform
/// contracts so the same code serves emulated domains and a real dom0: watches
/// <c>/local/domain/&lt;be&gt;/backend/&lt;type&gt;</c>, attaches a <see cref="RingSession"/> per device
/// (the Attach control event carries <c>params</c> as the image identifier), publishes the disk
/// (<c>sectors</c>, <c>sector-size</c>, <c>info</c>, features) and InitWait, connects the ring when the
/// frontend is Initialised, and tears down on Closing.
/// </summary>
/// <remarks>
/// Threading: all handshake work runs on the runtime's loop (watch callbacks post to it). Every value
/// a frontend writes is validated; a bad one is reported and closes that device only.
/// </remarks>
public sealed class XenbusBlockBackend : IDisposable
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
    }

    /// <summary>The xenstore directory watched for devices.</summary>
    public string Root => $"/local/domain/{_options.BackendDomain}/backend/{_options.DeviceType}";

    /// <summary>Starts watching for devices. Safe from any thread.</summary>
    public void Start() => _watch = _store.Watch(Root, _ => _runtime.Post(Rescan));

    /// <summary>Loop thread: the sessions this backend created, by backend path.</summary>
    public IReadOnlyDictionary<string, RingSession> Sessions =>
        _devices.Where(d => d.Value.Session != null).ToDictionary(d => d.Key, d => d.Value.Session!);

    private void Rescan()
    {
        if (_disposed) return;
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
        if (string.IsNullOrEmpty(frontend) || !frontend.StartsWith('/'))
        {
            // The toolstack writes 'frontend' together with the directory; wait for it.
            _devices.Remove(path);
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
        private IDisposable? _frontendWatch;
        private string _frontend = "";
        private bool _connected;
        private bool _closed;

        public RingSession? Session { get; private set; }

        private IXenStore Store => owner._store;
        private TapRuntime Runtime => owner._runtime;

        public void Start(ushort feDomid, string frontend)
        {
            _frontend = frontend;
            var imageId = Store.Read($"{path}/params");
            Session = new RingSession($"dom{feDomid}/{path[(path.LastIndexOf('/') + 1)..]}", feDomid, imageId, owner._mapper);
            Runtime.AttachSession(Session);
            if (!Session.IsOpen) { Fail("a control hook refused the attach"); return; }
            // NOTE: the toolstack's 'mode' node ("r" or "w") makes a disk read-only whatever the image allows.
            if (Store.Read($"{path}/mode") == "r") Session.ReadOnly = true;
            if (Session.Sectors == 0)
                Runtime.Report(TapDiagnosticLevel.Warning, Session, "no hook set the disk size at attach; the frontend sees a 0-sector disk");
            Store.Write($"{path}/max-ring-page-order", owner._options.MaxRingPageOrder.ToString(CultureInfo.InvariantCulture));
            Store.Write($"{path}/sectors", Session.Sectors.ToString(CultureInfo.InvariantCulture));
            Store.Write($"{path}/sector-size", Session.SectorSize.ToString(CultureInfo.InvariantCulture));
            Store.Write($"{path}/info", ((uint)Session.Info).ToString(CultureInfo.InvariantCulture));
            Store.Write($"{path}/feature-flush-cache", Session.SupportsFlush ? "1" : "0");
            Store.Write($"{path}/feature-barrier", "1");
            Store.Write($"{path}/feature-discard", Session.SupportsDiscard ? "1" : "0");
            if (Runtime.Options.MaxIndirectSegments > 0)
                Store.Write($"{path}/feature-max-indirect-segments", Runtime.Options.MaxIndirectSegments.ToString(CultureInfo.InvariantCulture));
            SetState(XenbusState.InitWait);
            _frontendWatch = Store.Watch($"{frontend}/state", _ => Runtime.Post(OnFrontendChanged));
        }

        private void OnFrontendChanged()
        {
            if (_closed || owner._disposed) return;
            var stateText = Store.Read($"{_frontend}/state");
            if (stateText == null) { Close("the frontend's directory disappeared", writeState: true); return; }
            if (!int.TryParse(stateText, NumberStyles.None, CultureInfo.InvariantCulture, out var raw) || raw is < 0 or > 8)
            {
                Fail($"frontend state '{Trim(stateText)}' is not a XenbusState");
                return;
            }
            switch ((XenbusState)raw)
            {
                case XenbusState.Initialised:
                case XenbusState.Connected:
                    if (!_connected) Connect();
                    break;
                case XenbusState.Closing:
                case XenbusState.Closed:
                    Close(null, writeState: true);
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
            var refs = new uint[1 << order];
            for (int i = 0; i < refs.Length; i++)
            {
                var key = order == 0 ? "ring-ref" : $"ring-ref{i}";
                var text = Store.Read($"{_frontend}/{key}");
                if (!uint.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out refs[i]))
                {
                    Fail($"{key} '{Trim(text)}' is not a grant reference");
                    return;
                }
            }
            var portText = Store.Read($"{_frontend}/event-channel");
            if (!uint.TryParse(portText, NumberStyles.None, CultureInfo.InvariantCulture, out var port))
            {
                Fail($"event-channel '{Trim(portText)}' is not a port number");
                return;
            }
            var channel = owner._channels.BindInterdomain(session.DomainId, port, out var bindError);
            if (channel == null) { Fail($"cannot bind event channel {port}: {bindError}"); return; }
            var error = session.ConnectRing(refs, protocol, channel);
            if (error != null) { channel.Dispose(); Fail(error); return; }
            _connected = true;
            SetState(XenbusState.Connected);
            Runtime.ConnectSession(session);
        }

        public void Fail(string reason)
        {
            Runtime.Report(TapDiagnosticLevel.Error, Session, $"{path}: {reason}");
            Close(reason, writeState: true);
        }

        public void Close(string? reason, bool writeState)
        {
            if (_closed) return;
            _closed = true;
            _frontendWatch?.Dispose();
            if (Session != null) Runtime.CloseSession(Session, reason);
            if (writeState)
            {
                SetState(XenbusState.Closing);
                SetState(XenbusState.Closed);
            }
        }

        private void SetState(XenbusState state) =>
            Store.Write($"{path}/state", ((int)state).ToString(CultureInfo.InvariantCulture));

        private static string Trim(string? s) => s == null ? "(missing)" : s.Length > 40 ? s[..40] + "..." : s;
    }
}
