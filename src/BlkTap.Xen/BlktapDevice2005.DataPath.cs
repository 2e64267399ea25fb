using BlkTap.Xen.Internal;

namespace BlkTap.Xen;

// The fe ring (frontend requests in, responses out) and the be ring (passed requests out, backend responses in).
public sealed unsafe partial class BlktapDevice2005
{
    private enum SlotState : byte { Free, AtTap, Queued, AtBackend, ProbeQueued, ProbeAtBackend }

    /// <summary>One of the driver's 64 active requests, indexed like the data area (ID_TO_IDX).</summary>
    private sealed class Slot(int requestSize)
    {
        public SlotState State;
        public readonly byte[] Wire = new byte[requestSize];   // the fe ring entry as read, forwarded verbatim
        public Blkif2005Request Request;
        public TapRequest? Tap;
    }

    private readonly Slot[] _slots = new Slot[BlktapDeviceAbi.Slots];
    private readonly Queue<int> _beQueue = new();
    private LegacyRing? _fe, _be;
    private uint _feReqCons, _feRspProdPvt, _beReqProdPvt, _beRspCons;
    private bool _fePushPending, _bePushPending;
    private byte* _bounce;

    private void ProcessFrontendRequests()
    {
        var ring = _fe!;
        uint prod = ring.ReadRequestProducer();
        // NOTE: blktap_userdev.c blktap_write_fe_ring refuses to add when RING_FULL, so unanswered requests never
        // exceed the ring (32 entries on x86_64); more means the producer index is garbage.
        if (unchecked(prod - _feRspProdPvt) > ring.Entries)
        {
            Fault($"the fe ring's req_prod {prod} claims more than its {ring.Entries} entries (answered up to {_feRspProdPvt})");
            return;
        }
        for (; _feReqCons != prod && FaultReason == null; _feReqCons++) Accept(ring.Entry(_feReqCons));
    }

    private void Accept(ReadOnlySpan<byte> entry)
    {
        var w = Blkif2005Request.Decode(entry, Layout);
        int idx = BlktapDeviceAbi.IdSlot(w.Id);
        // NOTE: blktap_datapath.c MAKE_ID: (domid << 16) | (idx & 63); an id outside that, or a slot still in flight,
        // was not made by the driver (it frees a slot only when it reads the tap's response), and answering it
        // would index past the kernel's active_reqs[64] (blktap_read_fe_ring does no check): fault, answer nothing.
        if (w.Id > uint.MaxValue || idx >= BlktapDeviceAbi.Slots) { Fault($"the fe ring carries id {w.Id:x}, which the driver cannot have made"); return; }
        var slot = _slots[idx];
        if (slot.State != SlotState.Free) { Fault($"the fe ring reuses slot {idx} (id {w.Id:x}) while it is in flight"); return; }
        slot.State = SlotState.AtTap;
        entry[..Layout.RequestSize].CopyTo(slot.Wire);
        slot.Request = w;
        slot.Tap = null;

        ushort domid = BlktapDeviceAbi.IdDomain(w.Id);
        _domains.TryGetValue(domid, out var session);
        string? hostile =
            w.SegmentCount > Blkif2005.MaxSegmentsPerRequest ? $"request {w.Id:x} has {w.SegmentCount} segments (at most {Blkif2005.MaxSegmentsPerRequest})"
            : w.Operation > Blkif2005.OpProbe ? $"request {w.Id:x} has operation {w.Operation}, which the 2005 blkif does not have"
            : null;
        if (hostile != null)
        {
            // One domain's bad request must not disturb the others sharing the rings: close its session only, and
            // still answer the id so the kernel frees its slot.
            if (session is { IsOpen: true }) _runtime.CloseSession(session, "protocol error: " + hostile);
            else Warn(null, $"domain {domid}: {hostile}");
            Answer(idx, Blkif2005.StatusError);
            return;
        }
        if (session is not { IsOpen: true }) { Answer(idx, Blkif2005.StatusError); return; }
        if (w.Operation == Blkif2005.OpProbe) { Probe(idx, session); return; }
        if (session.VirtualDevice is ushort vdev && w.Device != vdev)
        {
            Warn(session, $"request {w.Id:x} is for device {w.Device:x}; this session serves {vdev:x}");
            Answer(idx, Blkif2005.StatusError);
            return;
        }

        var modern = new BlkifRequest { Operation = (BlkifOperation)w.Operation, SegmentCount = w.SegmentCount, Handle = w.Device, Id = w.Id, Sector = w.Sector };
        for (int s = 0; s < w.SegmentCount; s++)
        {
            ulong fas = w.FrameAndSects[s];
            modern.Segments[s] = new BlkifSegment(Blkif2005.GrantRef(fas), Blkif2005.FirstSector(fas), Blkif2005.LastSector(fas));
        }
        var r = _runtime.RentRequest(session, w.Id, modern.Operation, w.Sector);
        slot.Tap = r;
        // NOTE: the 2005 blkif had no indirect requests (xen/include/public/io/blkif.h of Xen 2.0/3.0).
        var admitted = RequestAdmission.Admit(r, in modern, maxIndirectSegments: 0);
        if (admitted != BlkifStatus.Okay) { _runtime.Reject(r, admitted); return; }
        bool bounce = w.Operation == Blkif2005.OpWrite && _bounce != null;
        for (int s = 0; s < w.SegmentCount; s++)
        {
            var seg = modern.Segments[s];
            // NOTE: blktap_userdev.c MMAP_VADDR(user_vstart, ID_TO_IDX(id), seg): segment s of slot idx is mapped at
            // page 3 + idx*12 + s; first_sect/last_sect place the data in that page. With grant tables a WRITE's
            // pages are mapped GNTMAP_readonly, so hooks get a private copy (the bounce area) instead.
            byte* page = (byte*)Page(0) + BlktapDeviceAbi.DataOffset(idx, s);
            if (bounce)
            {
                byte* copy = BounceSegment(idx, s);
                new ReadOnlySpan<byte>(page + seg.PageOffset, seg.SectorCount * Blkif2005.SectorSize).CopyTo(new Span<byte>(copy + seg.PageOffset, seg.SectorCount * Blkif2005.SectorSize));
                page = copy;
            }
            RequestAdmission.AddSegment(r, (nint)(page + seg.PageOffset), seg.SectorCount * Blkif2005.SectorSize);
        }
        _runtime.Submit(r);
    }

    private byte* BounceSegment(int idx, int segment) =>
        _bounce + ((long)idx * Blkif2005.MaxSegmentsPerRequest + segment) * BlktapDeviceAbi.PageSize;

    /// <summary>
    /// PROBE: answered from the session when the chain knows the disk (a control hook set its size at attach),
    /// otherwise handed to the real backend unchanged when the device is the runtime's backend, otherwise ERROR.
    /// Hooks do not see probes (the runtime has no such operation).
    /// </summary>
    private void Probe(int idx, BlktapDomainSession session)
    {
        var w = _slots[idx].Request;
        if (session.Sectors > 0)
        {
            byte first = Blkif2005.FirstSector(w.FrameAndSects[0]), last = Blkif2005.LastSector(w.FrameAndSects[0]);
            if (w.SegmentCount == 0 || first > last || last >= Blkif2005.SectorsPerPage) { Answer(idx, Blkif2005.StatusError); return; }
            var disk = new Blkif2005Vdisk(session.Sectors, session.VirtualDevice ?? 0,
                session.ReadOnly ? Blkif2005Vdisk.InfoReadOnly : (ushort)0, (ushort)session.SectorSize);
            disk.Encode(new Span<byte>((byte*)Page(0) + BlktapDeviceAbi.DataOffset(idx, 0) + first * Blkif2005.SectorSize, Blkif2005Vdisk.Size));
            Answer(idx, 1); // NOTE: blkif.h 2005: a PROBE's status is the number of vdisk_t written
            return;
        }
        if (ReferenceEquals(_runtime.Backend, this))
        {
            _slots[idx].State = SlotState.ProbeQueued;
            _beQueue.Enqueue(idx);
            SendQueued();
            return;
        }
        Warn(session, "PROBE refused: no hook set the disk size and there is no backend behind the tap");
        Answer(idx, Blkif2005.StatusError);
    }

    /// <summary>Writes the response for slot <paramref name="idx"/> on the fe ring and frees the slot.</summary>
    private void Answer(int idx, short status)
    {
        var slot = _slots[idx];
        new Blkif2005Response(slot.Request.Id, slot.Request.Operation, status).Encode(_fe!.Entry(_feRspProdPvt), Layout);
        _feRspProdPvt++;
        slot.State = SlotState.Free;
        slot.Tap = null;
        _fePushPending = true;
    }

    /// <summary>Loop thread: the request's response passed the response hooks; answer it on the fe ring.</summary>
    internal void CompleteOnFrontendRing(TapRequest request)
    {
        int idx = BlktapDeviceAbi.IdSlot(request.Id);
        if (idx >= BlktapDeviceAbi.Slots || !ReferenceEquals(_slots[idx].Tap, request)) return;
        if (FaultReason != null || _fe == null || _disposed != 0) { _slots[idx].Tap = null; _slots[idx].State = SlotState.Free; return; }
        // NOTE: blkif.h 2005 has only OKAY 0 and ERROR -1: every failure (EOPNOTSUPP included) is ERROR.
        Answer(idx, request.Status == BlkifStatus.Okay ? Blkif2005.StatusOkay : Blkif2005.StatusError);
    }

    /// <inheritdoc/>
    /// <remarks>Loop thread: queues the request's original fe ring entry, unchanged (same id, same grant
    /// references: the backend maps the frontend's pages itself), for the be ring.</remarks>
    public void Submit(TapRequest request)
    {
        int idx = BlktapDeviceAbi.IdSlot(request.Id);
        if (request.Session is not BlktapDomainSession s || s.Device != this || FaultReason != null
            || idx >= BlktapDeviceAbi.Slots || !ReferenceEquals(_slots[idx].Tap, request))
        {
            _runtime.InjectResponse(request, BlkifStatus.Error);
            return;
        }
        if (_slots[idx].Request.Operation == Blkif2005.OpWrite && _bounce != null && WriteDataChanged(idx))
        {
            Warn(s, $"write {request.Id:x} refused: a hook changed its data, and the 2005 driver maps write data read-only (the backend reads the frontend's pages)");
            _runtime.InjectResponse(request, BlkifStatus.Error);
            return;
        }
        _slots[idx].State = SlotState.Queued;
        _beQueue.Enqueue(idx);
        SendQueued();
    }

    private bool WriteDataChanged(int idx)
    {
        var w = _slots[idx].Request;
        for (int s = 0; s < w.SegmentCount; s++)
        {
            int offset = Blkif2005.FirstSector(w.FrameAndSects[s]) * Blkif2005.SectorSize;
            int length = (Blkif2005.LastSector(w.FrameAndSects[s]) + 1) * Blkif2005.SectorSize - offset;
            var original = new ReadOnlySpan<byte>((byte*)Page(0) + BlktapDeviceAbi.DataOffset(idx, s) + offset, length);
            if (!original.SequenceEqual(new ReadOnlySpan<byte>(BounceSegment(idx, s) + offset, length))) return true;
        }
        return false;
    }

    private void SendQueued()
    {
        var ring = _be!;
        // NOTE: ring.h 2005 RING_FULL: req_prod_pvt - rsp_cons == RING_SIZE; the driver copies each request to the
        // real backend's ring without a check of its own, so the tap's limit is the backend's too.
        while (_beQueue.Count > 0 && unchecked(_beReqProdPvt - _beRspCons) < ring.Entries)
        {
            var slot = _slots[_beQueue.Dequeue()];
            slot.Wire.CopyTo(ring.Entry(_beReqProdPvt));
            _beReqProdPvt++;
            slot.State = slot.State == SlotState.ProbeQueued ? SlotState.ProbeAtBackend : SlotState.AtBackend;
            _bePushPending = true;
        }
    }

    private void ProcessBackendResponses()
    {
        var ring = _be!;
        uint prod = ring.ReadResponseProducer();
        if (unchecked(prod - _beRspCons) > unchecked(_beReqProdPvt - _beRspCons))
        {
            Fault($"the be ring's rsp_prod {prod} claims more responses than the {_beReqProdPvt - _beRspCons} requests outstanding");
            return;
        }
        for (; _beRspCons != prod; _beRspCons++)
        {
            var rsp = Blkif2005Response.Decode(ring.Entry(_beRspCons), Layout);
            int idx = BlktapDeviceAbi.IdSlot(rsp.Id);
            var slot = idx < BlktapDeviceAbi.Slots && rsp.Id <= uint.MaxValue ? _slots[idx] : null;
            if (slot != null && slot.Request.Id == rsp.Id && slot.State == SlotState.ProbeAtBackend)
                Answer(idx, rsp.Status); // the backend's vdisk count goes back unchanged
            else if (slot != null && slot.Request.Id == rsp.Id && slot.State == SlotState.AtBackend)
            {
                slot.State = SlotState.AtTap;
                _runtime.InjectResponse(slot.Tap!, rsp.Status == Blkif2005.StatusOkay ? BlkifStatus.Okay : BlkifStatus.Error);
            }
            else Warn(null, $"the backend answered id {rsp.Id:x}, which is not at the backend; ignored");
        }
        SendQueued();
    }
}
