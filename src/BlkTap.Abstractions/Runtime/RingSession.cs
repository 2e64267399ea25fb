namespace BlkTap;

/// <summary>
/// A session whose frontend speaks the blkif shared ring: an emulated or real Xen domain, or an
/// shmring client. Takes requests off the ring (copying each out once), validates them, maps their
/// data grants and submits them; queues responses and notifies once per loop pass. A Xen frontend may connect
/// several rings (blkif.h multi-queue): one session serves them all, each with its own event channel, requests
/// in flight and, with persistent grants, its own table of grants kept mapped; a response goes to the ring its
/// request came from.
/// </summary>
/// <remarks>
/// Threading: loop thread only, except that the event channel's handler calls <see cref="TapSession.Signal"/>.
/// The frontend is untrusted: every field it writes is validated, a producer index beyond the ring
/// closes this session only, and a request that names ungranted pages is answered ERROR.
/// </remarks>
public sealed class RingSession : TapSession
{
    private readonly IGrantMapper _mapper;
    private RingQueue[] _queues = [];

    /// <summary>Creates an unconnected ring session for <paramref name="frontendDomain"/>.</summary>
    public RingSession(string name, ushort frontendDomain, string? imageId, IGrantMapper mapper)
        : base(name, frontendDomain, imageId) => _mapper = mapper ?? throw new ArgumentNullException(nameof(mapper));

    /// <summary>The ABI the frontend speaks (valid once connected).</summary>
    public BlkifProtocol Protocol { get; private set; }

    /// <summary>The back ring once connected, queue 0's when there are several (tests and diagnostics).</summary>
    public BackRing? Ring => _queues.Length > 0 ? _queues[0].Ring : null;

    /// <summary>The rings once connected, one per queue (tests and diagnostics). Loop thread.</summary>
    public IReadOnlyList<BackRing> Rings => _queues.Select(q => q.Ring).ToArray();

    /// <summary>How many rings (queues) the frontend connected: 1 without multi-queue, 0 before connecting.</summary>
    public int QueueCount => _queues.Length;

    /// <summary>True when the rings were connected with persistent grants (both ends wrote feature-persistent=1).</summary>
    public bool PersistentGrants { get; private set; }

    /// <summary>Grants kept mapped now over all rings (persistent grants; 0 without them). Loop thread.</summary>
    public int PersistentGrantCount
    {
        get
        {
            int n = 0;
            foreach (var q in _queues) n += q.Persistent?.Count ?? 0;
            return n;
        }
    }

    /// <summary>
    /// Loop thread: maps the frontend's ring pages (writable) and binds its event channel. On failure
    /// nothing stays mapped and the reason is returned.
    /// </summary>
    public string? ConnectRing(ReadOnlySpan<uint> ringRefs, BlkifProtocol protocol, IEventChannel channel) =>
        ConnectRings([ringRefs.ToArray()], protocol, [channel], maxPersistentGrants: 0);

    /// <summary>
    /// Loop thread: maps one ring per queue (<paramref name="ringRefs"/>[q], its pages writable) with its event
    /// channel (<paramref name="channels"/>[q]), and keeps up to <paramref name="maxPersistentGrants"/> data grants
    /// mapped per ring (0: map and unmap per request). On failure nothing stays mapped, the channels are the
    /// caller's to dispose, and the reason is returned.
    /// </summary>
    public string? ConnectRings(IReadOnlyList<uint[]> ringRefs, BlkifProtocol protocol, IReadOnlyList<IEventChannel> channels, int maxPersistentGrants)
    {
        ArgumentNullException.ThrowIfNull(ringRefs);
        ArgumentNullException.ThrowIfNull(channels);
        if (_queues.Length != 0) return "the ring is already connected";
        if (ringRefs.Count == 0 || ringRefs.Count != channels.Count) return $"{ringRefs.Count} rings for {channels.Count} event channels";
        var queues = new RingQueue[ringRefs.Count];
        for (int q = 0; q < queues.Length; q++)
        {
            var error = MapRing(ringRefs[q], protocol, out var ring, out var handle);
            if (error != null)
            {
                for (int k = 0; k < q; k++) _mapper.Unmap(queues[k].RingHandle);
                return queues.Length == 1 ? error : $"queue {q}: {error}";
            }
            var persistent = maxPersistentGrants > 0
                ? new PersistentGrantTable(_mapper, DomainId, maxPersistentGrants, (int)ring!.Size * BlkifConstants.MaxSegmentsPerRequest)
                : null;
            queues[q] = new RingQueue(q, ring!, channels[q], handle, persistent);
        }
        Protocol = protocol;
        PersistentGrants = maxPersistentGrants > 0;
        _queues = queues;
        foreach (var q in queues) Listen(q);
        return null;
    }

    private string? MapRing(uint[] ringRefs, BlkifProtocol protocol, out BackRing? ring, out long handle)
    {
        ring = null;
        handle = 0;
        if (ringRefs.Length == 0 || ringRefs.Length > 1 << BlkifConstants.MaxRingPageOrder || (ringRefs.Length & (ringRefs.Length - 1)) != 0)
            return $"a ring of {ringRefs.Length} pages is not a power of two up to {1 << BlkifConstants.MaxRingPageOrder}";
        Span<nint> pages = stackalloc nint[ringRefs.Length];
        var status = _mapper.Map(DomainId, ringRefs, writable: true, pages, out handle);
        if (status != GrantStatus.Okay) { handle = 0; return $"cannot map ring grant(s) {string.Join(',', ringRefs)}: {status}"; }
        for (int i = 1; i < pages.Length; i++)
        {
            if (pages[i] != pages[0] + i * BlkifConstants.PageSize)
            {
                _mapper.Unmap(handle);
                handle = 0;
                return "the ring pages did not map contiguously";
            }
        }
        ring = new BackRing(pages[0], ringRefs.Length * BlkifConstants.PageSize, BlkifLayout.For(protocol));
        return null;
    }

    /// <summary>
    /// Loop thread: connects a ring the transport has already mapped (the shmring transport: page 0
    /// of the shared file, not a grant). The transport owns the memory: it stays mapped until the
    /// transport releases it after the runtime has no request of this session in flight.
    /// </summary>
    public string? ConnectRing(nint ringAddress, int ringBytes, BlkifProtocol protocol, IEventChannel channel)
    {
        if (_queues.Length != 0) return "the ring is already connected";
        int pages = ringBytes / BlkifConstants.PageSize;
        if (ringAddress == 0 || ringBytes % BlkifConstants.PageSize != 0 || pages == 0 || pages > 1 << BlkifConstants.MaxRingPageOrder || (pages & (pages - 1)) != 0)
            return $"a ring of {ringBytes} bytes is not a power of two of pages up to {1 << BlkifConstants.MaxRingPageOrder}";
        Protocol = protocol;
        _queues = [new RingQueue(0, new BackRing(ringAddress, ringBytes, BlkifLayout.For(protocol)), channel, 0, null)];
        Listen(_queues[0]);
        return null;
    }

    private void Listen(RingQueue queue)
    {
        queue.Backoff = new SpuriousEventBackoff(Signal, queue.Channel, Runtime?.Options.TimeProvider ?? TimeProvider.System);
        queue.Channel!.SetHandler(queue.Backoff.OnEvent);
    }

    /// <summary>Times the loop asked this session for requests (a signal, a notification). Loop thread.</summary>
    public long Wakeups { get; private set; }

    /// <summary>Wake-ups that found no request on any ring (a guest notifying for nothing). Loop thread.</summary>
    public long IdleWakeups { get; private set; }

    /// <summary>
    /// Times a ring's notifications were held back because they kept finding nothing to do (XSA-332; see
    /// <see cref="SpuriousEventBackoff"/>), over the rings connected now. Loop thread.
    /// </summary>
    public long EventDeferrals
    {
        get
        {
            long n = 0;
            foreach (var q in _queues) n += q.Backoff?.Deferrals ?? 0;
            return n;
        }
    }

    /// <inheritdoc/>
    /// <remarks>
    /// Takes at most one ring's worth of requests from each ring per call, then signals itself again and returns,
    /// so the other sessions' work queued meanwhile runs first. Every ring of the session is looked at: the event
    /// channels of all queues signal the one session.
    /// A ring whose notifications keep finding nothing has them held back for a doubling delay
    /// (<see cref="SpuriousEventBackoff"/>, XSA-332's lateeoi policy).
    /// NOTE: XSA-332-like fairness: a guest that keeps refilling its ring while the backend consumes it (ring.h
    /// allows req_prod to move up to rsp_prod_pvt + size at any time) would otherwise keep this loop in one call
    /// forever and starve every other session of the tap.
    /// </remarks>
    protected internal override void Process()
    {
        var queues = _queues;
        if (queues.Length == 0) return;
        Wakeups++;
        bool idle = true, again = false;
        foreach (var queue in queues)
        {
            if (!IsOpen) return;
            var backoff = queue.Backoff;
            bool notified = backoff?.TakeEvent() ?? false;
            switch (ProcessQueue(queue))
            {
                case QueueResult.Closed: return;
                case QueueResult.Budget: again = true; idle = false; backoff?.Took(); break;
                case QueueResult.Took: idle = false; backoff?.Took(); break;
            }
            if (notified) backoff!.Handled();
        }
        if (again) Signal();
        else if (idle) IdleWakeups++;
    }

    private enum QueueResult { Idle, Took, Budget, Closed }

    private QueueResult ProcessQueue(RingQueue queue)
    {
        var ring = queue.Ring;
        long budget = ring.Size;
        bool took = false;
        while (IsOpen)
        {
            long n = ring.UnconsumedRequests();
            if (n == 0) n = ring.FinalCheckForRequests();
            if (n < 0)
            {
                string which = _queues.Length > 1 ? $"queue {queue.Index}: " : "";
                Runtime.CloseSession(this, $"protocol error: {which}req_prod claims more than the ring's {ring.Size} slots (req_prod {ring.SharedRequestProducer}, req_cons {ring.RequestConsumer}, rsp_prod {ring.ResponseProducerPrivate})");
                return QueueResult.Closed;
            }
            if (n == 0) return took ? QueueResult.Took : QueueResult.Idle;
            took = true;
            for (; n > 0 && IsOpen; n--)
            {
                if (budget-- == 0) return QueueResult.Budget;
                ring.TakeRequest(out var request);
                Accept(queue, in request);
            }
        }
        return QueueResult.Closed;
    }

    // The stackalloc'd descriptor, reference and address arrays are always written before they are read.
    [System.Runtime.CompilerServices.SkipLocalsInit]
    private void Accept(RingQueue queue, in BlkifRequest wire)
    {
        var runtime = Runtime;
        var op = wire.Operation == BlkifOperation.Indirect ? wire.IndirectOperation : wire.Operation;
        var r = runtime.RentRequest(this, wire.Id, op, wire.Operation, wire.Sector);
        // Every rented request ends in Submit or Reject, so Complete runs for it exactly once.
        r.TransportObject = queue;
        queue.InFlight++;
        var admitted = RequestAdmission.Admit(r, in wire, runtime.Options.MaxIndirectSegments);
        if (admitted != BlkifStatus.Okay) { runtime.Reject(r, admitted); return; }
        int count = op == BlkifOperation.Discard ? 0 : wire.SegmentCount;
        if (count == 0) { runtime.Submit(r); return; }

        Span<BlkifSegment> segments = count <= 32 ? stackalloc BlkifSegment[32] : new BlkifSegment[count];
        segments = segments[..count];
        if (wire.Operation == BlkifOperation.Indirect)
        {
            if (!ReadIndirectSegments(queue, in wire, segments)) { runtime.Reject(r, BlkifStatus.Error); return; }
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
        // With persistent grants the ring's table maps each grant once, writable (PersistentGrantTable).
        long handle;
        var status = queue.Persistent is { } kept
            ? kept.Map(refs, writable: op == BlkifOperation.Read, pages, out handle)
            : _mapper.Map(DomainId, refs, writable: op == BlkifOperation.Read, pages, out handle);
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

    private unsafe bool ReadIndirectSegments(RingQueue queue, in BlkifRequest wire, Span<BlkifSegment> segments)
    {
        int pagesNeeded = wire.IndirectPageCount;
        Span<uint> refs = stackalloc uint[BlkifConstants.MaxIndirectPagesPerRequest];
        Span<nint> pages = stackalloc nint[BlkifConstants.MaxIndirectPagesPerRequest];
        refs = refs[..pagesNeeded];
        pages = pages[..pagesNeeded];
        for (int i = 0; i < pagesNeeded; i++) refs[i] = wire.IndirectRefs[i];
        // NOTE: Linux blkfront with feature-persistent takes indirect pages from its persistent grants too, so they
        // go through the ring's table like data pages (xen-blkfront.c, blkif_queue_rw_req).
        long handle;
        var status = queue.Persistent is { } kept
            ? kept.Map(refs, writable: false, pages, out handle)
            : _mapper.Map(DomainId, refs, writable: false, pages, out handle);
        if (status != GrantStatus.Okay) return false;
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
        finally { if (handle != 0) _mapper.Unmap(handle); }
        return true;
    }

    /// <inheritdoc/>
    protected internal override void Complete(TapRequest request)
    {
        if (request.TransportHandle != 0) { _mapper.Unmap(request.TransportHandle); request.TransportHandle = 0; }
        if (request.TransportObject is not RingQueue queue) return;
        request.TransportObject = null;
        queue.InFlight--;
        if (!IsOpen)
        {
            // The last request of a closed ring gives its kept grants back (OnClosed could not: pages were in use).
            if (queue.InFlight == 0) ReleasePersistent(queue);
            return;
        }
        // NOTE: Linux blkback answers an indirect request with its inner operation (xen-blkback blkback.c).
        var op = request.WireOperation == BlkifOperation.Indirect ? request.Operation : request.WireOperation;
        queue.Ring.EnqueueResponse(new BlkifResponse(request.Id, op, request.Status));
        queue.PushPending = true;
    }

    /// <inheritdoc/>
    protected internal override void FlushCompletions()
    {
        if (!IsOpen) return;
        foreach (var queue in _queues)
        {
            if (!queue.PushPending) continue;
            queue.PushPending = false;
            if (queue.Ring.PushResponsesAndCheckNotify()) queue.Channel?.Notify();
        }
    }

    /// <inheritdoc/>
    /// <remarks>
    /// Unbinds every queue's event channel and unmaps its ring now; a ring's persistent grants are unmapped now when
    /// none of its requests is in flight, else when the last one completes (a stolen or backend request may still use
    /// the pages).
    /// </remarks>
    protected internal override void OnClosed(string? reason)
    {
        foreach (var queue in _queues)
        {
            queue.Channel?.SetHandler(null);
            queue.Channel?.Dispose();
            queue.Channel = null;
            queue.Backoff?.Dispose();
            if (queue.RingHandle != 0) { _mapper.Unmap(queue.RingHandle); queue.RingHandle = 0; }
            if (queue.InFlight == 0) ReleasePersistent(queue);
        }
        _queues = []; // requests still in flight hold their queue (TransportObject)
    }

    private static void ReleasePersistent(RingQueue queue)
    {
        queue.Persistent?.UnmapAll();
        queue.Persistent = null;
    }
}
