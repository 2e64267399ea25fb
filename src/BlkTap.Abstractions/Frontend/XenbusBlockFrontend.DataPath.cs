namespace BlkTap;

public sealed partial class XenbusBlockFrontend
{
    private const int InlineSegments = BlkifConstants.MaxSegmentsPerRequest;
    private const int MaxIndirectSegmentsSent = 256;

    /// <summary>One chain request on its way down: split into parts, answered when every part is.</summary>
    private sealed class Pending
    {
        public TapRequest Request = null!;
        public BlkifOperation PartOperation;  // what the next part sends
        public int NextSegment;               // data parts: the first segment not wholly sent
        public int NextOffset;                // and the byte in it where the next part starts
        public bool SinglePartSent;           // flush / discard / trailing flush: sent
        public bool FlushAfter;               // FUA or barrier: a FLUSH_DISKCACHE once the data is down
        public int PartsInFlight;
        public BlkifStatus Status;
        public bool Answered;

        public bool HasData => PartOperation is BlkifOperation.Read or BlkifOperation.Write;
        public bool FullySent => HasData ? NextSegment >= Request.SegmentCount : SinglePartSent;
    }

    /// <summary>
    /// One ring request id: its data pages are bounce pages [Index*PagesPerSlot, +SegmentsPerSlot), followed by
    /// its indirect-descriptor page when indirect requests are used.
    /// </summary>
    private sealed class Slot
    {
        public int Index;
        public Pending? Owner;
        public BlkifOperation Operation;      // on the wire (Indirect for an indirect request)
        public BlkifOperation DataOperation;  // what it does (the indirect request's read or write)
        public int FirstSegment, FirstOffset, PageCount;
    }

    private readonly Queue<Pending> _queued = new();
    private readonly Stack<Pending> _pendingPool = new();
    private readonly Stack<int> _freeSlots = new();
    private Slot[] _slots = Array.Empty<Slot>();
    private IGrantedPages? _bounce;
    private int _segmentsPerSlot = InlineSegments, _pagesPerSlot = InlineSegments;
    private bool _indirect;
    private long _requestsSent, _responsesReceived, _indirectSent;

    /// <summary>Pages an indirect request carries at most (valid once connected); 0 when indirect requests are not used.</summary>
    public int IndirectSegments { get { lock (_lock) return _indirect ? _segmentsPerSlot : 0; } }

    /// <summary>Indirect requests sent to the backend so far.</summary>
    public long IndirectRequestsSent => Interlocked.Read(ref _indirectSent);

    /// <summary>Ring requests sent to the backend so far.</summary>
    public long RequestsSent => Interlocked.Read(ref _requestsSent);

    /// <summary>Responses taken from the ring so far.</summary>
    public long ResponsesReceived => Interlocked.Read(ref _responsesReceived);

    /// <summary>Requests taken and not yet answered (in flight at the backend or queued).</summary>
    public int Outstanding
    {
        get
        {
            lock (_lock)
            {
                int n = _queued.Count;
                foreach (var slot in _slots) if (slot.Owner != null) n++;
                return n;
            }
        }
    }

    /// <summary>As the runtime's backend (past the last hook): <see cref="Submit"/>, or ERROR when not connected.</summary>
    void ITapBackend.Submit(TapRequest request)
    {
        if (!Submit(request)) request.Runtime.InjectResponse(request, BlkifStatus.Error);
    }

    /// <summary>
    /// Sends <paramref name="request"/> to the backend; its answer comes later through
    /// <see cref="TapRuntime.InjectResponse"/> (the caller returns <see cref="HookResult.Stolen"/>).
    /// Returns false, taking nothing, when the frontend is not connected (the caller answers ERROR).
    /// Requests wait in FIFO order while the ring is full.
    /// </summary>
    public bool Submit(TapRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        lock (_lock)
        {
            if (_phase != Phase.Connected) return false;
            var p = _pendingPool.Count > 0 ? _pendingPool.Pop() : new Pending();
            p.Request = request;
            p.NextSegment = 0;
            p.NextOffset = 0;
            p.SinglePartSent = false;
            p.PartsInFlight = 0;
            p.Status = BlkifStatus.Okay;
            p.Answered = false;
            p.FlushAfter = false;
            switch (request.Operation)
            {
                case BlkifOperation.Read:
                    p.PartOperation = BlkifOperation.Read;
                    break;
                case BlkifOperation.Write:
                case BlkifOperation.WriteBarrier:
                    p.PartOperation = BlkifOperation.Write;
                    // NOTE: xen-blkfront.c sends a FUA or preflush write as its flush operation with data;
                    // Linux blkback turns that into a preflush, which does not make the write itself
                    // durable, so FUA here is the write followed by an empty FLUSH_DISKCACHE.
                    p.FlushAfter = (request.ForceUnitAccess || request.Operation == BlkifOperation.WriteBarrier) && (SupportsFlush || SupportsBarrier);
                    break;
                case BlkifOperation.FlushDiskCache:
                    // NOTE: blkif.h: a backend without feature-flush-cache / feature-barrier has no volatile
                    // cache to flush; its completed writes are durable.
                    if (!SupportsFlush && !SupportsBarrier) { Answer(p, BlkifStatus.Okay); return true; }
                    p.PartOperation = SupportsFlush ? BlkifOperation.FlushDiskCache : BlkifOperation.WriteBarrier;
                    break;
                case BlkifOperation.Discard:
                    if (!SupportsDiscard) { Answer(p, BlkifStatus.NotSupported); return true; }
                    p.PartOperation = BlkifOperation.Discard;
                    break;
                default:
                    Answer(p, BlkifStatus.NotSupported);
                    return true;
            }
            if (p.HasData && request.SegmentCount == 0) { Answer(p, BlkifStatus.Okay); return true; }
            _queued.Enqueue(p);
            Pump();
        }
        return true;
    }

    /// <summary>
    /// Sizes and grants the data pages once the backend's features are known: inline (11 pages per ring request) or,
    /// when the backend offers indirect requests, up to MaxIndirectSegments pages plus a descriptor page; Depth is
    /// lowered to the grant budget. Lock held.
    /// </summary>
    private bool AllocateBounce(out string? error)
    {
        int indirect = (int)Math.Min(Math.Min(MaxIndirectSegments, (uint)_options.MaxIndirectSegments), MaxIndirectSegmentsSent);
        _indirect = indirect > InlineSegments;
        _segmentsPerSlot = _indirect ? indirect : InlineSegments;
        _pagesPerSlot = _segmentsPerSlot + (_indirect ? 1 : 0);
        Depth = Math.Max(1, Math.Min(Depth, Math.Max(_options.GrantBudget, _pagesPerSlot) / _pagesPerSlot));
        _bounce = _platform.Grants.Grant(BackendDomainId, Depth * _pagesPerSlot, writable: true, out error);
        if (_bounce == null) return false;
        _slots = new Slot[Depth];
        _freeSlots.Clear();
        for (int i = Depth - 1; i >= 0; i--) { _slots[i] = new Slot { Index = i }; _freeSlots.Push(i); }
        return true;
    }

    /// <summary>Sends queued parts while ring slots are free; notifies the backend if the ring says so. Lock held.</summary>
    private void Pump()
    {
        var ring = _ring;
        if (ring == null || _phase != Phase.Connected) return;
        bool pushed = false;
        while (_queued.Count > 0 && _freeSlots.Count > 0 && !ring.IsFull)
        {
            var p = _queued.Peek();
            SendPart(p, ring);
            pushed = true;
            if (p.FullySent) _queued.Dequeue();
        }
        if (pushed && ring.PushRequestsAndCheckNotify()) _channel?.Notify();
    }

    private unsafe void SendPart(Pending p, FrontRing ring)
    {
        var slot = _slots[_freeSlots.Pop()];
        slot.Owner = p;
        slot.Operation = p.PartOperation;
        slot.DataOperation = p.PartOperation;
        slot.PageCount = 0;
        BlkifRequest wire = default;
        wire.Id = (ulong)slot.Index;
        wire.Handle = DeviceId;
        wire.Operation = p.PartOperation;
        var r = p.Request;
        if (p.HasData)
        {
            // Walk the request's data in pieces of at most a page (a transport's segment may be longer than a
            // page; a ring segment never is), one bounce page per piece: 11 inline, or up to the slot's indirect
            // segment count, whose descriptors go to the slot's descriptor page.
            var segments = r.Segments;
            slot.FirstSegment = p.NextSegment;
            slot.FirstOffset = p.NextOffset;
            wire.Sector = segments[p.NextSegment].Sector + (ulong)(p.NextOffset / BlkifConstants.SectorSize);
            int firstPage = slot.Index * _pagesPerSlot;
            var descriptors = _indirect ? BouncePage(firstPage + _segmentsPerSlot) : default;
            int count = 0;
            while (count < _segmentsPerSlot && p.NextSegment < segments.Length)
            {
                var seg = segments[p.NextSegment];
                int length = Math.Min(BlkifConstants.PageSize, seg.Length - p.NextOffset);
                int page = firstPage + count;
                if (p.PartOperation == BlkifOperation.Write) seg.Span.Slice(p.NextOffset, length).CopyTo(BouncePage(page));
                var descriptor = new BlkifSegment(_bounce!.Reference(page), 0, (byte)(length / BlkifConstants.SectorSize - 1));
                if (count < InlineSegments) wire.Segments[count] = descriptor;
                if (_indirect) BlkifCodec.EncodeSegment(descriptor, descriptors.Slice(count * BlkifSegment.Size, BlkifSegment.Size));
                count++;
                p.NextOffset += length;
                if (p.NextOffset >= seg.Length) { p.NextSegment++; p.NextOffset = 0; }
            }
            wire.SegmentCount = count;
            slot.PageCount = count;
            if (count > InlineSegments)
            {
                // NOTE: blkif.h blkif_request_indirect: operation BLKIF_OP_INDIRECT, the real operation in
                // indirect_op, nr_segments a u16, the descriptors (blkif_request_segment, 8 bytes each) in the
                // granted pages named by indirect_grefs.
                wire.Operation = BlkifOperation.Indirect;
                wire.IndirectOperation = p.PartOperation;
                wire.IndirectRefs[0] = _bounce!.Reference(firstPage + _segmentsPerSlot);
                slot.Operation = BlkifOperation.Indirect;
                Interlocked.Increment(ref _indirectSent);
            }
        }
        else
        {
            if (p.PartOperation == BlkifOperation.Discard)
            {
                wire.Sector = r.Sector;
                wire.DiscardSectorCount = r.SectorCount;
                wire.DiscardFlags = r.DiscardFlags;
            }
            p.SinglePartSent = true;
        }
        ring.EnqueueRequest(wire);
        p.PartsInFlight++;
        Interlocked.Increment(ref _requestsSent);
    }

    private unsafe Span<byte> BouncePage(int page) =>
        new((void*)(_bounce!.Address + (nint)page * BlkifConstants.PageSize), BlkifConstants.PageSize);

    /// <summary>The event channel fired: take every response, answer finished requests, send more.</summary>
    private void OnEvent()
    {
        lock (_lock)
        {
            if (_phase is not (Phase.Connected or Phase.Closing) || _ring == null) return;
            var ring = _ring;
            while (true)
            {
                long n = ring.UnconsumedResponses();
                if (n < 0) { Fail("the backend published more responses than there are requests (rsp_prod overrun)"); break; }
                for (; n > 0; n--)
                {
                    var response = ring.TakeResponse();
                    Interlocked.Increment(ref _responsesReceived);
                    if (!Complete(response)) break;
                }
                if (_phase is not (Phase.Connected or Phase.Closing)) break;
                long more = ring.FinalCheckForResponses();
                if (more < 0) { Fail("the backend published more responses than there are requests (rsp_prod overrun)"); break; }
                if (more == 0) break;
            }
            Pump();
        }
        RunDeferredDisposals();
    }

    /// <summary>Matches a response to its slot; false when the backend broke the protocol (then failed). Lock held.</summary>
    private bool Complete(BlkifResponse response)
    {
        // NOTE: xen-blkfront.c blkif_interrupt(): an id out of range or not in flight, or an operation
        // that does not match the request, is a broken backend.
        if (response.Id >= (ulong)_slots.Length || _slots[(int)response.Id].Owner == null)
        {
            Fail($"the backend answered id {response.Id}, which is not in flight");
            return false;
        }
        var slot = _slots[(int)response.Id];
        // NOTE: for an indirect request xen-blkback answers with the indirect_op (blkback.c dispatch_rw_block_io
        // records the real operation), other backends echo BLKIF_OP_INDIRECT; xen-blkfront accepts both.
        if (response.Operation != slot.Operation && !(slot.Operation == BlkifOperation.Indirect && response.Operation == slot.DataOperation))
        {
            Fail($"the backend answered id {response.Id} as {response.Operation}, but it was {slot.Operation}");
            return false;
        }
        var p = slot.Owner!;
        slot.Owner = null;
        _freeSlots.Push(slot.Index);
        p.PartsInFlight--;
        if (response.Status == BlkifStatus.Okay && slot.DataOperation == BlkifOperation.Read)
        {
            var segments = p.Request.Segments;
            int segment = slot.FirstSegment, offset = slot.FirstOffset;
            for (int j = 0; j < slot.PageCount; j++)
            {
                var seg = segments[segment];
                int length = Math.Min(BlkifConstants.PageSize, seg.Length - offset);
                BouncePage(slot.Index * _pagesPerSlot + j)[..length].CopyTo(seg.Span.Slice(offset, length));
                offset += length;
                if (offset >= seg.Length) { segment++; offset = 0; }
            }
        }
        if (response.Status != BlkifStatus.Okay && p.Status == BlkifStatus.Okay)
            p.Status = response.Status is BlkifStatus.NotSupported ? BlkifStatus.NotSupported : BlkifStatus.Error;
        if (p.PartsInFlight > 0 || !p.FullySent || p.Answered) return true;
        if (p.FlushAfter && p.Status == BlkifStatus.Okay)
        {
            p.FlushAfter = false;
            p.PartOperation = SupportsFlush ? BlkifOperation.FlushDiskCache : BlkifOperation.WriteBarrier;
            p.SinglePartSent = false;
            _queued.Enqueue(p);
            return true;
        }
        Answer(p, p.Status);
        return true;
    }

    /// <summary>Answers a request once and recycles its record. Lock held.</summary>
    private void Answer(Pending p, BlkifStatus status)
    {
        if (p.Answered) return;
        p.Answered = true;
        var r = p.Request;
        p.Request = null!;
        _pendingPool.Push(p);
        r.Runtime.InjectResponse(r, status);
    }

    /// <summary>Answers every request with a part at the backend with ERROR. Lock held.</summary>
    private void FailInFlight(string reason)
    {
        _ = reason;
        foreach (var slot in _slots)
        {
            var p = slot.Owner;
            if (p == null) continue;
            slot.Owner = null;
            if (!p.Answered) Answer(p, BlkifStatus.Error);
        }
    }

    /// <summary>Answers every queued request with ERROR. Lock held.</summary>
    private void FailQueued(string reason)
    {
        _ = reason;
        while (_queued.Count > 0)
        {
            var p = _queued.Dequeue();
            if (!p.Answered) Answer(p, BlkifStatus.Error);
        }
    }
}
