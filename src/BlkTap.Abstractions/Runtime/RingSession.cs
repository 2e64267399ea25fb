namespace BlkTap;

/// <summary>
/// A session whose frontend speaks the blkif shared ring: an emulated or real Xen domain, or an
/// shmring client. Takes requests off the ring (copying each out once), validates them, maps their
/// data grants and submits them; queues responses and notifies once per loop pass.
/// </summary>
/// <remarks>
/// Threading: loop thread only, except that the event channel's handler calls <see cref="TapSession.Signal"/>.
/// The frontend is untrusted: every field it writes is validated, a producer index beyond the ring
/// closes this session only, and a request that names ungranted pages is answered ERROR.
/// </remarks>
public sealed class RingSession : TapSession
{
    private readonly IGrantMapper _mapper;
    private BackRing? _ring;
    private IEventChannel? _channel;
    private long _ringHandle;
    private bool _pushPending;

    /// <summary>Creates an unconnected ring session for <paramref name="frontendDomain"/>.</summary>
    public RingSession(string name, ushort frontendDomain, string? imageId, IGrantMapper mapper)
        : base(name, frontendDomain, imageId) => _mapper = mapper ?? throw new ArgumentNullException(nameof(mapper));

    /// <summary>The ABI the frontend speaks (valid once connected).</summary>
    public BlkifProtocol Protocol { get; private set; }

    /// <summary>The back ring once connected (tests and diagnostics).</summary>
    public BackRing? Ring => _ring;

    /// <summary>
    /// Loop thread: maps the frontend's ring pages (writable) and binds its event channel. On failure
    /// nothing stays mapped and the reason is returned.
    /// </summary>
    public string? ConnectRing(ReadOnlySpan<uint> ringRefs, BlkifProtocol protocol, IEventChannel channel)
    {
        if (_ring != null) return "the ring is already connected";
        if (ringRefs.Length == 0 || ringRefs.Length > 1 << BlkifConstants.MaxRingPageOrder || (ringRefs.Length & (ringRefs.Length - 1)) != 0)
            return $"a ring of {ringRefs.Length} pages is not a power of two up to {1 << BlkifConstants.MaxRingPageOrder}";
        Span<nint> pages = stackalloc nint[ringRefs.Length];
        var status = _mapper.Map(DomainId, ringRefs, writable: true, pages, out var handle);
        if (status != GrantStatus.Okay) return $"cannot map ring grant(s) {string.Join(',', ringRefs.ToArray())}: {status}";
        for (int i = 1; i < pages.Length; i++)
        {
            if (pages[i] != pages[0] + i * BlkifConstants.PageSize)
            {
                _mapper.Unmap(handle);
                return "the ring pages did not map contiguously";
            }
        }
        _ringHandle = handle;
        Protocol = protocol;
        _ring = new BackRing(pages[0], ringRefs.Length * BlkifConstants.PageSize, BlkifLayout.For(protocol));
        _channel = channel;
        channel.SetHandler(Signal);
        return null;
    }

    /// <summary>
    /// Loop thread: connects a ring the transport has already mapped (the shmring transport: page 0
    /// of the shared file, not a grant). The transport owns the memory: it stays mapped until the
    /// transport releases it after the runtime has no request of this session in flight.
    /// </summary>
    public string? ConnectRing(nint ringAddress, int ringBytes, BlkifProtocol protocol, IEventChannel channel)
    {
        if (_ring != null) return "the ring is already connected";
        int pages = ringBytes / BlkifConstants.PageSize;
        if (ringAddress == 0 || ringBytes % BlkifConstants.PageSize != 0 || pages == 0 || pages > 1 << BlkifConstants.MaxRingPageOrder || (pages & (pages - 1)) != 0)
            return $"a ring of {ringBytes} bytes is not a power of two of pages up to {1 << BlkifConstants.MaxRingPageOrder}";
        Protocol = protocol;
        _ring = new BackRing(ringAddress, ringBytes, BlkifLayout.For(protocol));
        _channel = channel;
        channel.SetHandler(Signal);
        return null;
    }

    /// <summary>Times the loop asked this session for requests (a signal, a notification). Loop thread.</summary>
    public long Wakeups { get; private set; }

    /// <summary>Wake-ups that found no request on the ring (a guest notifying for nothing). Loop thread.</summary>
    public long IdleWakeups { get; private set; }

    /// <inheritdoc/>
    /// <remarks>
    /// Takes at most one ring's worth of requests per call, then signals itself again and returns, so the other
    /// sessions' work queued meanwhile runs first.
    /// NOTE: XSA-332-like fairness: a guest that keeps refilling its ring while the backend consumes it (ring.h
    /// allows req_prod to move up to rsp_prod_pvt + size at any time) would otherwise keep this loop in one call
    /// forever and starve every other session of the tap.
    /// </remarks>
    protected internal override void Process()
    {
        var ring = _ring;
        if (ring == null) return;
        Wakeups++;
        long budget = ring.Size;
        bool idle = true;
        while (IsOpen)
        {
            long n = ring.UnconsumedRequests();
            if (n == 0) n = ring.FinalCheckForRequests();
            if (n < 0)
            {
                Runtime.CloseSession(this, $"protocol error: req_prod claims more than the ring's {ring.Size} slots (req_prod {ring.SharedRequestProducer}, req_cons {ring.RequestConsumer}, rsp_prod {ring.ResponseProducerPrivate})");
                return;
            }
            if (n == 0)
            {
                if (idle) IdleWakeups++;
                return;
            }
            idle = false;
            for (; n > 0 && IsOpen; n--)
            {
                if (budget-- == 0) { Signal(); return; }
                ring.TakeRequest(out var request);
                Accept(in request);
            }
        }
    }

    // The stackalloc'd descriptor, reference and address arrays are always written before they are read.
    [System.Runtime.CompilerServices.SkipLocalsInit]
    private void Accept(in BlkifRequest wire)
    {
        var runtime = Runtime;
        var op = wire.Operation == BlkifOperation.Indirect ? wire.IndirectOperation : wire.Operation;
        var r = runtime.RentRequest(this, wire.Id, op, wire.Operation, wire.Sector);
        var admitted = RequestAdmission.Admit(r, in wire, runtime.Options.MaxIndirectSegments);
        if (admitted != BlkifStatus.Okay) { runtime.Reject(r, admitted); return; }
        int count = op == BlkifOperation.Discard ? 0 : wire.SegmentCount;
        if (count == 0) { runtime.Submit(r); return; }

        Span<BlkifSegment> segments = count <= 32 ? stackalloc BlkifSegment[32] : new BlkifSegment[count];
        segments = segments[..count];
        if (wire.Operation == BlkifOperation.Indirect)
        {
            if (!ReadIndirectSegments(in wire, segments)) { runtime.Reject(r, BlkifStatus.Error); return; }
            ulong total = 0;
            foreach (var s in segments)
            {
                if (!s.IsValid) { runtime.Reject(r, BlkifStatus.Error); return; }
                total += (ulong)s.SectorCount;
            }
            if (!BlkifValidation.InRange(wire.Sector, total, Sectors)) { runtime.Reject(r, BlkifStatus.Error); return; }
        }
        else
        {
            for (int i = 0; i < count; i++) segments[i] = wire.Segments[i];
        }

        Span<uint> refs = count <= 32 ? stackalloc uint[32] : new uint[count];
        Span<nint> pages = count <= 32 ? stackalloc nint[32] : new nint[count];
        refs = refs[..count];
        pages = pages[..count];
        for (int i = 0; i < count; i++) refs[i] = segments[i].GrantRef;
        // NOTE: a read fills the frontend's pages, so it needs a writable mapping; a write only reads them.
        var status = _mapper.Map(DomainId, refs, writable: op == BlkifOperation.Read, pages, out var handle);
        if (status != GrantStatus.Okay)
        {
            runtime.Report(TapDiagnosticLevel.Warning, this, $"request {wire.Id}: grant mapping failed ({status})");
            runtime.Reject(r, BlkifStatus.Error);
            return;
        }
        r.TransportHandle = handle;
        for (int i = 0; i < count; i++)
            RequestAdmission.AddSegment(r, pages[i] + segments[i].PageOffset, segments[i].ByteCount);
        runtime.Submit(r);
    }

    private unsafe bool ReadIndirectSegments(in BlkifRequest wire, Span<BlkifSegment> segments)
    {
        int pagesNeeded = wire.IndirectPageCount;
        Span<uint> refs = stackalloc uint[BlkifConstants.MaxIndirectPagesPerRequest];
        Span<nint> pages = stackalloc nint[BlkifConstants.MaxIndirectPagesPerRequest];
        refs = refs[..pagesNeeded];
        pages = pages[..pagesNeeded];
        for (int i = 0; i < pagesNeeded; i++) refs[i] = wire.IndirectRefs[i];
        if (_mapper.Map(DomainId, refs, writable: false, pages, out var handle) != GrantStatus.Okay) return false;
        try
        {
            for (int i = 0; i < segments.Length; i++)
            {
                int page = i / BlkifConstants.SegmentsPerIndirectFrame;
                int slot = i % BlkifConstants.SegmentsPerIndirectFrame;
                // Copied out once: the frontend may rewrite the page afterwards without effect.
                segments[i] = BlkifCodec.DecodeSegment(new ReadOnlySpan<byte>((byte*)pages[page] + slot * BlkifSegment.Size, BlkifSegment.Size));
            }
        }
        finally { _mapper.Unmap(handle); }
        return true;
    }

    /// <inheritdoc/>
    protected internal override void Complete(TapRequest request)
    {
        if (request.TransportHandle != 0) { _mapper.Unmap(request.TransportHandle); request.TransportHandle = 0; }
        var ring = _ring;
        if (!IsOpen || ring == null) return;
        // NOTE: Linux blkback answers an indirect request with its inner operation (xen-blkback blkback.c).
        var op = request.WireOperation == BlkifOperation.Indirect ? request.Operation : request.WireOperation;
        ring.EnqueueResponse(new BlkifResponse(request.Id, op, request.Status));
        _pushPending = true;
    }

    /// <inheritdoc/>
    protected internal override void FlushCompletions()
    {
        if (!_pushPending || _ring == null || !IsOpen) return;
        _pushPending = false;
        if (_ring.PushResponsesAndCheckNotify()) _channel?.Notify();
    }

    /// <inheritdoc/>
    protected internal override void OnClosed(string? reason)
    {
        _channel?.SetHandler(null);
        _channel?.Dispose();
        _channel = null;
        _ring = null;
        if (_ringHandle != 0) { _mapper.Unmap(_ringHandle); _ringHandle = 0; }
    }
}
