using System.Globalization;
using BlkTap.Testing;
using BlkTap.Xen;
using NUnit.Framework;

namespace BlkTap.Xen.Tests.Advisories;

/// <summary>
/// dom0 playing a guest's block frontend by hand against our backend: its ring is a gntalloc page granted to dom0,
/// its event channel an unbound port offered to dom0, its xenstore directory written node by node. A test may
/// behave (<see cref="Submit"/>) or not (write the ring's slots and pages at any moment, notify without end, flip
/// states, write thousands of nodes).
/// </summary>
/// <remarks>
/// Threading: one test thread drives it; the ring memory and <see cref="EditEverySlot"/> may be touched from any
/// thread (that is the point: a hook on the tap's loop plays the guest rewriting its memory).
/// </remarks>
internal sealed unsafe class XenRawFrontend : IDisposable
{
    private readonly XenStore _store;
    private readonly GntallocGrantIssuer _issuer;
    private readonly SemaphoreSlim _events = new(0);
    private readonly SemaphoreSlim _backendChanged = new(0);
    private readonly List<IGrantedPages> _grants = [];
    private readonly IDisposable _backendWatch;
    private IGrantedPages? _ringPage;
    private ulong _nextId = 1;

    private XenRawFrontend(XenStore store, GntallocGrantIssuer issuer, XenVbdNodes nodes, BlkifProtocol protocol)
    {
        _store = store;
        _issuer = issuer;
        Nodes = nodes;
        Layout = BlkifLayout.For(protocol);
        Protocol = protocol;
        _backendWatch = store.Watch(nodes.BackendPath + "/state", _ => _backendChanged.Release());
    }

    public XenVbdNodes Nodes { get; }
    public BlkifProtocol Protocol { get; }
    public BlkifLayout Layout { get; }
    public FrontRing? Ring { get; private set; }
    public XenEventChannel? Channel { get; private set; }

    /// <summary>The ring page as dom0 granted it (the guest's side of the ring).</summary>
    public nint RingAddress => _ringPage!.Address;

    /// <summary>Event-channel notifications from the backend so far.</summary>
    public int NotificationsReceived;

    public static XenRawFrontend Attach(XenStore store, GntallocGrantIssuer issuer, string deviceType, string vdev, BlkifProtocol protocol)
    {
        var attachment = new XenVbdAttachment(0, vdev, "xsa-" + vdev) { DeviceType = deviceType };
        var nodes = XenVbdToolstack.PathsFor(attachment);
        XenVbdToolstack.RemoveNodes(store, nodes); // a previous run's leftovers
        var frontend = new XenRawFrontend(store, issuer, nodes, protocol);
        XenVbdToolstack.WriteAttach(store, attachment);
        return frontend;
    }

    /// <summary>The backend's state as xenstore holds it.</summary>
    public XenbusState BackendState =>
        int.TryParse(_store.Read(Nodes.BackendPath + "/state"), NumberStyles.None, CultureInfo.InvariantCulture, out var v) ? (XenbusState)v : XenbusState.Unknown;

    /// <summary>Waits (on the backend's state node) until the backend is in <paramref name="state"/>.</summary>
    public void WaitBackend(XenbusState state, string what) => Waits.ForSignal(_backendChanged, () => BackendState == state, what);

    /// <summary>Waits until the backend is in one of <paramref name="states"/>.</summary>
    public void WaitBackend(XenbusState[] states, string what) => Waits.ForSignal(_backendChanged, () => states.Contains(BackendState), what);

    public void WriteState(XenbusState state) =>
        _store.Write(Nodes.FrontendPath + "/state", ((int)state).ToString(CultureInfo.InvariantCulture));

    /// <summary>
    /// The frontend's half of a connect up to its nodes: the ring page (granted once, re-initialised each time),
    /// a fresh unbound event channel (blkfront allocates one per connect), ring-ref, event-channel, protocol.
    /// </summary>
    public void OfferRing()
    {
        if (_ringPage == null)
        {
            _ringPage = _issuer.Grant(0, 1, writable: true, out var error);
            Assert.That(_ringPage, Is.Not.Null, error);
        }
        new Span<byte>((void*)_ringPage!.Address, BlkifConstants.PageSize).Clear();
        Ring = new FrontRing(_ringPage.Address, BlkifConstants.PageSize, Layout, initialiseShared: true);
        Channel?.Dispose();
        Channel = XenEventChannel.AllocateUnbound(0);
        Channel.SetHandler(() => { Interlocked.Increment(ref NotificationsReceived); _events.Release(); });
        var inv = CultureInfo.InvariantCulture;
        _store.Write(Nodes.FrontendPath + "/ring-ref", _ringPage.Reference(0).ToString(inv));
        _store.Write(Nodes.FrontendPath + "/event-channel", Channel.LocalPort.ToString(inv));
        _store.Write(Nodes.FrontendPath + "/protocol", Protocol.ToName());
    }

    /// <summary>Offers the ring, writes Initialised, waits for the backend's Connected, writes Connected.</summary>
    public void Connect()
    {
        OfferRing();
        WriteState(XenbusState.Initialised);
        WaitBackend(XenbusState.Connected, $"{Nodes.BackendPath}: the backend's Connected");
        WriteState(XenbusState.Connected);
    }

    /// <summary>Closes this connect's event channel (the guest's port goes away, as on blkfront's disconnect).</summary>
    public void ReleaseChannel()
    {
        Channel?.Dispose();
        Channel = null;
    }

    /// <summary>Grants <paramref name="count"/> new pages to dom0 (freed with the frontend).</summary>
    public IGrantedPages Grant(int count, bool writable)
    {
        var pages = _issuer.Grant(0, count, writable, out var error);
        Assert.That(pages, Is.Not.Null, error);
        _grants.Add(pages!);
        return pages!;
    }

    /// <summary>Page <paramref name="index"/> of <paramref name="pages"/>, as the guest sees it.</summary>
    public static Span<byte> Page(IGrantedPages pages, int index) =>
        new((byte*)pages.Address + index * BlkifConstants.PageSize, BlkifConstants.PageSize);

    /// <summary>Ring entry <paramref name="index"/> (mod the ring size).</summary>
    public Span<byte> Slot(uint index)
    {
        int entry = Layout.RingEntrySize;
        return new Span<byte>((byte*)RingAddress + SharedRingLayout.EntriesOffset + (index & (Ring!.Size - 1)) * entry, entry);
    }

    /// <summary>Applies <paramref name="edit"/> to every ring entry (the header and its indexes untouched).</summary>
    public void EditEverySlot(SpanEdit edit)
    {
        for (uint i = 0; i < Ring!.Size; i++) edit(Slot(i));
    }

    public delegate void SpanEdit(Span<byte> slot);

    /// <summary>rsp_prod as the backend published it.</summary>
    public uint ResponseProducer => Volatile.Read(ref *(uint*)((byte*)RingAddress + SharedRingLayout.RspProd));

    /// <summary>Encodes <paramref name="request"/> (with a fresh id) into the next slot, publishes it and notifies as the ring asks.</summary>
    public ulong Publish(BlkifRequest request)
    {
        request.Id = _nextId++;
        var raw = new byte[Layout.RingEntrySize];
        BlkifCodec.EncodeRequest(request, Layout, raw);
        PublishRaw(raw);
        return request.Id;
    }

    /// <summary>Copies <paramref name="raw"/> into the next slot, publishes it and notifies as the ring asks.</summary>
    public void PublishRaw(ReadOnlySpan<byte> raw)
    {
        raw.CopyTo(Ring!.NextRequestSlot());
        Ring.CommitRequest();
        if (Ring.PushRequestsAndCheckNotify()) Channel!.Notify();
    }

    /// <summary>Waits for the next response and takes it; fails on a ring protocol error.</summary>
    public BlkifResponse NextResponse(string what)
    {
        Waits.ForSignal(_events, () => Ring!.FinalCheckForResponses() != 0, what);
        Assert.That(Ring!.UnconsumedResponses(), Is.GreaterThan(0), $"{what}: the backend published more responses than requests");
        return Ring.TakeResponse();
    }

    /// <summary>Publishes <paramref name="request"/> and waits for its response.</summary>
    public BlkifResponse Submit(BlkifRequest request, string what)
    {
        ulong id = Publish(request);
        var response = NextResponse(what);
        Assert.That(response.Id, Is.EqualTo(id), $"{what}: the response's id");
        return response;
    }

    /// <summary>Drops the frontend: event channel, grants, its and the backend's directories.</summary>
    public void Dispose()
    {
        _backendWatch.Dispose();
        ReleaseChannel();
        foreach (var g in _grants) g.Dispose();
        _ringPage?.Dispose();
        try { XenVbdToolstack.RemoveNodes(_store, Nodes); }
        catch (Exception ex) when (ex is XenInteropException or ObjectDisposedException) { }
    }
}
