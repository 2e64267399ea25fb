using System.Globalization;
using BlkTap.Emulator;

namespace BlkTap.Emulator.Tests;

/// <summary>
/// A tiny blkback for tests only: the backend half of the xenbus handshake and a ring server over a
/// byte array, written against the Abstractions contracts (IXenStore, IGrantMapper,
/// IEventChannelFactory, BackRing). Runs its work on the emulator's scheduler (watch and event callbacks).
/// </summary>
internal sealed unsafe class TestBackend
{
    private readonly XenEmulator _emulator;
    private readonly IXenStore _store;
    private readonly IGrantMapper _mapper;
    private readonly IEventChannelFactory _channels;
    private readonly ushort _frontendDomain;
    private readonly byte[] _disk;
    private BackRing? _ring;
    private long _ringHandle;
    private nint _ringAddress;
    private IEventChannel? _channel;
    private IDisposable? _watch;

    public TestBackend(XenEmulator emulator, VbdPaths paths, ushort backendDomain, ushort frontendDomain, byte[] disk)
    {
        _emulator = emulator;
        _store = emulator.Store;
        _mapper = emulator.GrantMapperFor(backendDomain);
        _channels = emulator.EventChannelFactoryFor(backendDomain);
        _frontendDomain = frontendDomain;
        _disk = disk;
        Paths = paths;
    }

    public VbdPaths Paths { get; }
    /// <summary>Offered max-ring-page-order; null: the node is not written (single page ring).</summary>
    public int? MaxRingPageOrder { get; set; } = 3;
    public bool FeatureFlush { get; set; } = true;
    public bool FeatureDiscard { get; set; } = true;
    /// <summary>Take requests off the ring but do not answer them until <see cref="ReleaseHeld"/>.</summary>
    public bool HoldResponses { get; set; }
    /// <summary>When set, the next response carries this id instead of the request's.</summary>
    public ulong? ForgeNextResponseId { get; set; }
    /// <summary>When set, the next push also publishes this many bogus extra responses (rsp_prod overrun).</summary>
    public bool OverrunNextPush { get; set; }

    public List<BlkifRequest> Held { get; } = new();
    public List<BlkifSegment> SeenSegments { get; } = new();
    public List<BlkifOperation> SeenOperations { get; } = new();
    public string? ProtocolSeen { get; private set; }
    public int RingPages { get; private set; }
    public string? Error { get; private set; }
    public bool Connected { get; private set; }
    public int RequestsServed { get; private set; }
    public ulong Sectors => (ulong)_disk.Length / 512;

    public void Start()
    {
        var be = Paths.BackendPath;
        var inv = CultureInfo.InvariantCulture;
        if (MaxRingPageOrder is int order) _store.Write(be + "/max-ring-page-order", order.ToString(inv));
        _store.Write(be + "/feature-flush-cache", FeatureFlush ? "1" : "0");
        _store.Write(be + "/feature-discard", FeatureDiscard ? "1" : "0");
        _store.Write(be + "/feature-max-indirect-segments", "0");
        _store.Write(be + "/sectors", Sectors.ToString(inv));
        _store.Write(be + "/sector-size", "512");
        _store.Write(be + "/info", "0");
        XenbusDevices.WriteState(_store, be, XenbusState.InitWait);
        _watch = _store.Watch(Paths.FrontendPath + "/state", _ => OnFrontendChanged());
    }

    /// <summary>Answers every held request (on the scheduler).</summary>
    public void ReleaseHeld() => _emulator.Post(() =>
    {
        HoldResponses = false;
        foreach (var r in Held) Answer(r);
        Held.Clear();
        Push();
    });

    private void OnFrontendChanged()
    {
        var state = XenbusDevices.ReadState(_store, Paths.FrontendPath);
        if (state == XenbusState.Initialised && !Connected) Connect();
        else if (state is XenbusState.Closing or XenbusState.Closed && Connected) Disconnect();
    }

    private void Connect()
    {
        var fe = Paths.FrontendPath;
        if (!BlkifProtocolNames.TryParse(_store.Read(fe + "/protocol"), out var protocol)) { Error = "bad protocol"; return; }
        ProtocolSeen = _store.Read(fe + "/protocol");
        int order = (int)XenbusDevices.ReadUnsigned(_store, fe + "/ring-page-order", 0);
        int pages = 1 << order;
        var refs = new uint[pages];
        for (int i = 0; i < pages; i++)
        {
            string node = pages == 1 ? "/ring-ref" : "/ring-ref" + i.ToString(CultureInfo.InvariantCulture);
            refs[i] = (uint)XenbusDevices.ReadUnsigned(_store, fe + node, 0);
        }
        var addresses = new nint[pages];
        var status = _mapper.Map(_frontendDomain, refs, writable: true, addresses, out _ringHandle);
        if (status != GrantStatus.Okay) { Error = $"ring map: {status}"; return; }
        for (int i = 1; i < pages; i++)
            if (addresses[i] != addresses[0] + i * 4096) { Error = "ring pages not contiguous"; return; }
        RingPages = pages;
        _ringAddress = addresses[0];
        _ring = new BackRing(addresses[0], 4096 << order, BlkifLayout.For(protocol));
        uint port = (uint)XenbusDevices.ReadUnsigned(_store, fe + "/event-channel", 0);
        _channel = _channels.BindInterdomain(_frontendDomain, port, out var error);
        if (_channel == null) { Error = error; return; }
        _channel.SetHandler(Serve);
        Connected = true;
        XenbusDevices.WriteState(_store, Paths.BackendPath, XenbusState.Connected);
    }

    private void Disconnect()
    {
        Connected = false;
        _channel?.Dispose();
        _mapper.Unmap(_ringHandle);
        _ring = null;
        XenbusDevices.WriteState(_store, Paths.BackendPath, XenbusState.Closed);
    }

    private void Serve()
    {
        var ring = _ring;
        if (ring == null) return;
        while (true)
        {
            long n = ring.UnconsumedRequests();
            if (n < 0) { Error = "request overrun"; return; }
            for (; n > 0; n--)
            {
                ring.TakeRequest(out var request);
                SeenOperations.Add(request.Operation);
                if (HoldResponses) Held.Add(request);
                else Answer(request);
            }
            if (ring.FinalCheckForRequests() <= 0) break;
        }
        Push();
    }

    private void Push()
    {
        var ring = _ring;
        if (ring == null) return;
        bool notify = ring.PushResponsesAndCheckNotify();
        if (OverrunNextPush)
        {
            OverrunNextPush = false;
            // Publish a producer index far past anything the frontend asked for.
            *(uint*)(_ringAddress + SharedRingLayout.RspProd) = ring.ResponseProducerPrivate + 1000;
            notify = true;
        }
        if (notify) _channel?.Notify();
    }

    private void Answer(in BlkifRequest request)
    {
        var status = Process(request);
        ulong id = request.Id;
        if (ForgeNextResponseId is ulong forged) { id = forged; ForgeNextResponseId = null; }
        _ring!.EnqueueResponse(new BlkifResponse(id, request.Operation, status));
        RequestsServed++;
    }

    private BlkifStatus Process(in BlkifRequest request)
    {
        var fault = BlkifValidation.Validate(request, Sectors, readOnly: false);
        if (fault != RequestFault.None) return BlkifValidation.StatusFor(fault);
        switch (request.Operation)
        {
            case BlkifOperation.Read:
            case BlkifOperation.Write:
                {
                    int n = request.SegmentCount;
                    var refs = new uint[n];
                    for (int i = 0; i < n; i++) { refs[i] = request.Segments[i].GrantRef; SeenSegments.Add(request.Segments[i]); }
                    var pages = new nint[n];
                    bool read = request.Operation == BlkifOperation.Read;
                    if (_mapper.Map(_frontendDomain, refs, writable: read, pages, out long handle) != GrantStatus.Okay) return BlkifStatus.Error;
                    long offset = (long)request.Sector * 512;
                    for (int i = 0; i < n; i++)
                    {
                        var seg = request.Segments[i];
                        var page = new Span<byte>((void*)pages[i], 4096).Slice(seg.PageOffset, seg.ByteCount);
                        var disk = _disk.AsSpan((int)offset, seg.ByteCount);
                        if (read) disk.CopyTo(page); else page.CopyTo(disk);
                        offset += seg.ByteCount;
                    }
                    _mapper.Unmap(handle);
                    return BlkifStatus.Okay;
                }
            case BlkifOperation.FlushDiskCache:
                return BlkifStatus.Okay;
            case BlkifOperation.Discard:
                if (!FeatureDiscard) return BlkifStatus.NotSupported;
                _disk.AsSpan((int)request.Sector * 512, (int)request.DiscardSectorCount * 512).Clear();
                return BlkifStatus.Okay;
            default:
                return BlkifStatus.NotSupported;
        }
    }
}
