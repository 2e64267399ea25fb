using System.Buffers.Binary;
using BlkTap.Emulator.Internal;

namespace BlkTap.Emulator;

public sealed partial class BlkFront
{
    // The data path: calls queued from any thread, moved onto the ring as requests whose pages are granted (Pump),
    // and responses matched back to their calls (OnEvent). Scheduler only, except Submit.

    private static void CheckLength(int length, string name)
    {
        if (length % BlkifConstants.SectorSize != 0)
            throw new ArgumentException($"the length {length} is not a multiple of {BlkifConstants.SectorSize}", name);
    }

    private BlkFrontOperation Submit(BlkFrontOperation op)
    {
        var phase = _phase;
        if (phase == Phase.Broken) op.Fail(new BlkFrontException($"{FrontendPath} is broken: {_brokenReason}"));
        else if (phase is Phase.Closing or Phase.Closed) op.Fail(new BlkFrontException($"{FrontendPath} is disconnected"));
        else if (phase != Phase.Connected) op.Fail(new BlkFrontException($"{FrontendPath} is not connected yet (await ConnectAsync)"));
        else
        {
            _incoming.Enqueue(op);
            if (Interlocked.Exchange(ref _pumpScheduled, 1) == 0) _emulator.Post(_pump);
        }
        return op;
    }

    /// <summary>Moves calls onto the ring while it has room. Scheduler only.</summary>
    private void Pump()
    {
        Volatile.Write(ref _pumpScheduled, 0);
        if (_phase == Phase.Connected && !Domain.IsAlive)
        {
            // The guest was destroyed under us: nothing can be granted or pushed any more.
            Break($"domain {Domain.Id} is dead");
        }
        if (_phase != Phase.Connected)
        {
            FailIncoming();
            return;
        }
        while (_incoming.TryDequeue(out var op)) _waiting.Enqueue(op);
        var queues = _queues;
        while (_waiting.Count > 0)
        {
            var op = _waiting.Peek();
            var queue = NextQueue(op.Kind == BlkFrontOperationKind.Raw);
            if (queue == null) break;
            SubmitPart(op, queue);
            queue.Pushed = true;
            if (op.FullySubmitted) _waiting.Dequeue();
        }
        Volatile.Write(ref _waitingCount, _waiting.Count);
        foreach (var queue in queues)
        {
            if (!queue.Pushed) continue;
            queue.Pushed = false;
            if (queue.Ring.PushRequestsAndCheckNotify()) queue.EventChannel.Notify();
        }
    }

    /// <summary>
    /// The ring the next request goes to: the queues in turn, skipping full ones (null when all are full). Raw
    /// requests always go to queue 0 (<see cref="Ring"/>), which hostile tests watch.
    /// </summary>
    private BlkFrontQueue? NextQueue(bool raw)
    {
        var queues = _queues;
        if (raw) return HasRoom(queues[0]) ? queues[0] : null;
        for (int k = 0; k < queues.Length; k++)
        {
            var queue = queues[_nextQueue];
            _nextQueue = _nextQueue + 1 == queues.Length ? 0 : _nextQueue + 1;
            if (HasRoom(queue)) return queue;
        }
        return null;
    }

    private static bool HasRoom(BlkFrontQueue queue) => !queue.Ring.IsFull && queue.FreeIds.Count > 0;

    private void SubmitPart(BlkFrontOperation op, BlkFrontQueue queue)
    {
        var ring = queue.Ring;
        int id = queue.FreeIds.Pop();
        var shadow = queue.Shadows[id];
        shadow.Operation = op;
        shadow.SegmentCount = 0;
        BlkifRequest request = default;
        request.Id = (ulong)id;
        request.Handle = (ushort)DeviceId;
        switch (op.Kind)
        {
            case BlkFrontOperationKind.Read:
            case BlkFrontOperationKind.Write:
                FillDataRequest(op, queue, shadow, ref request);
                break;
            case BlkFrontOperationKind.Flush:
                request.Operation = BlkifOperation.FlushDiskCache;
                op.FullySubmitted = true;
                break;
            case BlkFrontOperationKind.Discard:
                request.Operation = BlkifOperation.Discard;
                request.Sector = op.Sector;
                request.DiscardSectorCount = op.SectorCount;
                op.FullySubmitted = true;
                break;
            case BlkFrontOperationKind.Raw:
                {
                    var slot = ring.NextRequestSlot();
                    slot.Clear();
                    op.RawRequest!.CopyTo(slot);
                    // NOTE: every request form keeps its id at the same offset (blkif.h: id follows the
                    // 4-byte header, 8-aligned on x86_64, 4-aligned on x86_32).
                    BinaryPrimitives.WriteUInt64LittleEndian(slot[Layout.RequestId..], (ulong)id);
                    ring.CommitRequest();
                    shadow.RequestOperation = (BlkifOperation)op.RawRequest![0];
                    op.FullySubmitted = true;
                    op.PartsInFlight++;
                    Interlocked.Increment(ref _inFlight);
                    Interlocked.Increment(ref _requestsSubmitted);
                    return;
                }
        }
        shadow.RequestOperation = request.Operation;
        ring.EnqueueRequest(request);
        op.PartsInFlight++;
        Interlocked.Increment(ref _inFlight);
        Interlocked.Increment(ref _requestsSubmitted);
    }

    private void FillDataRequest(BlkFrontOperation op, BlkFrontQueue queue, BlkFrontShadow shadow, ref BlkifRequest request)
    {
        bool write = op.Kind == BlkFrontOperationKind.Write;
        request.Operation = write ? BlkifOperation.Write : BlkifOperation.Read;
        request.Sector = op.Sector + op.SubmittedSectors;
        shadow.BufferOffset = checked((int)(op.SubmittedSectors * BlkifConstants.SectorSize));
        int first = _options.RandomFirstSector ? _random.Next(BlkifConstants.SectorsPerPage) : _options.FirstSectorOffset;
        ulong remaining = op.SectorCount - op.SubmittedSectors;
        int segments = 0;
        int bufferOffset = shadow.BufferOffset;
        while (segments < _options.MaxSegmentsPerRequest && remaining > 0)
        {
            int start = segments == 0 ? first : 0;
            int count = (int)Math.Min((ulong)(BlkifConstants.SectorsPerPage - start), remaining);
            uint gref = GrantDataPage(queue, write, out var page, out bool persistent);
            int bytes = count * BlkifConstants.SectorSize;
            if (write)
                op.WriteData.Span.Slice(bufferOffset, bytes).CopyTo(Domain.GetPage(page).Slice(start * BlkifConstants.SectorSize, bytes));
            shadow.GrantRefs[segments] = gref;
            shadow.Pages[segments] = page;
            shadow.Persistent[segments] = persistent;
            shadow.FirstSectors[segments] = (byte)start;
            shadow.SectorCounts[segments] = (byte)count;
            request.Segments[segments] = new BlkifSegment(gref, (byte)start, (byte)(start + count - 1));
            segments++;
            remaining -= (ulong)count;
            bufferOffset += bytes;
            op.SubmittedSectors += (ulong)count;
        }
        request.SegmentCount = segments;
        shadow.SegmentCount = segments;
        if (op.SubmittedSectors == op.SectorCount) op.FullySubmitted = true;
    }

    private nint RentPage() => _pagePool.Count > 0 ? _pagePool.Pop() : Domain.AllocatePages(1);

    /// <summary>
    /// Grants one data page of a request on <paramref name="queue"/> to the backend: with persistent grants a page of
    /// the ring's pool (granted once, read-write, reused), else a fresh grant of a pooled page for this request only.
    /// Give it back with <see cref="ReleaseDataPage"/> once the request is answered. Scheduler only.
    /// </summary>
    internal uint GrantDataPage(BlkFrontQueue queue, bool write, out nint page, out bool persistent)
    {
        persistent = _persistent;
        if (persistent)
        {
            if (queue.FreeGrants.TryPop(out var kept)) { page = kept.Page; return kept.Ref; }
            page = RentPage();
            // NOTE: blkif.h "feature-persistent": the same grants serve reads and writes, so they are read-write
            // (xen-blkfront.c get_grant: grant_foreign_access(..., 0)); a write's data is copied into them.
            uint fresh = Domain.Grants.GrantAccess(BackendDomainId, page, readOnly: false);
            queue.AllGrants.Add((page, fresh));
            return fresh;
        }
        page = RentPage();
        // NOTE: blkfront grants data pages read-only for writes (the backend only reads them) and
        // writable for reads (xen-blkfront.c, blkif_setup_rw_req_grant).
        return Domain.Grants.GrantAccess(BackendDomainId, page, readOnly: write);
    }

    /// <summary>
    /// Gives back a page of <see cref="GrantDataPage"/> after its request was answered: a persistent one to the ring's
    /// pool, a per-request one revoked and pooled. False when the backend still maps a per-request grant (the page is
    /// then freed at its last unmap). Scheduler only.
    /// </summary>
    internal bool ReleaseDataPage(BlkFrontQueue queue, uint gref, nint page, bool persistent)
    {
        if (persistent) { queue.FreeGrants.Push((page, gref)); return true; }
        if (Domain.Grants.EndAccess(gref)) { _pagePool.Push(page); return true; }
        Domain.FreePages(page); // freed when the backend unmaps it
        return false;
    }

    // ---------------------------------------------------------------- responses

    /// <summary>The event channel handler: consumes responses, then refills the ring. Scheduler only.</summary>
    private void OnEvent(BlkFrontQueue queue)
    {
        if (_phase is not (Phase.Connected or Phase.Closing)) return;
        var ring = queue.Ring;
        while (true)
        {
            long n = ring.UnconsumedResponses();
            if (n < 0)
            {
                Break("the backend published more responses than there are outstanding requests (rsp_prod overrun)");
                return;
            }
            for (; n > 0; n--)
            {
                var response = ring.TakeResponse();
                Interlocked.Increment(ref _responsesReceived);
                if (!Complete(queue, response)) return;
            }
            long more = ring.FinalCheckForResponses();
            if (more < 0)
            {
                Break("the backend published more responses than there are outstanding requests (rsp_prod overrun)");
                return;
            }
            if (more == 0) break;
        }
        if (_phase == Phase.Connected) Pump();
    }

    /// <summary>Matches a response to its shadow; false when it broke the frontend.</summary>
    private bool Complete(BlkFrontQueue queue, BlkifResponse response)
    {
        var shadows = queue.Shadows;
        // NOTE: xen-blkfront.c blkif_interrupt(): an id out of range or not in flight, or an operation
        // differing from the request's, is a backend protocol error; the device is put in error state.
        if (response.Id >= (ulong)shadows.Length || !shadows[(int)response.Id].InUse)
        {
            Break($"the backend answered request id {response.Id}{QueueName(queue)}, which is not outstanding");
            return false;
        }
        int id = (int)response.Id;
        var shadow = shadows[id];
        var op = shadow.Operation!;
        if (op.Kind != BlkFrontOperationKind.Raw && response.Operation != shadow.RequestOperation)
        {
            Break($"the backend answered request {id} ({shadow.RequestOperation}) with operation {(byte)response.Operation}");
            return false;
        }
        // NOTE: blkif_rsp_to_req_status(): OKAY and EOPNOTSUPP are themselves, anything else is an error.
        var status = response.Status is BlkifStatus.Okay or BlkifStatus.NotSupported ? response.Status : BlkifStatus.Error;
        // An uncopied batch read (BlkFrontBatchOperation.ReadUncopied) has no buffer: its data stays in the pages.
        if (op.Kind == BlkFrontOperationKind.Read && status == BlkifStatus.Okay && !op.ReadBuffer.IsEmpty)
        {
            var target = op.ReadBuffer.Span;
            int offset = shadow.BufferOffset;
            for (int s = 0; s < shadow.SegmentCount; s++)
            {
                int bytes = shadow.SectorCounts[s] * BlkifConstants.SectorSize;
                Domain.GetPage(shadow.Pages[s]).Slice(shadow.FirstSectors[s] * BlkifConstants.SectorSize, bytes).CopyTo(target.Slice(offset, bytes));
                offset += bytes;
            }
        }
        uint stillMapped = ReleaseShadow(queue, id, shadow);
        op.PartsInFlight--;
        if (stillMapped != 0)
        {
            // NOTE: blkfront refuses to reuse a page the backend still maps after answering
            // (XSA-376 hardening, "backend has not unmapped grant").
            string reason = $"the backend still maps grant {stillMapped} after answering request {id}";
            Break(reason);
            op.Fail(new BlkFrontException($"{FrontendPath} is broken: {reason}"));
            return false;
        }
        op.Record(status);
        if (op.FullySubmitted && op.PartsInFlight == 0) op.Complete(response);
        return true;
    }

    /// <summary>Gives back a shadow's pages and frees its id; returns a per-request reference still mapped (0 if none).</summary>
    private uint ReleaseShadow(BlkFrontQueue queue, int id, BlkFrontShadow shadow)
    {
        uint stillMapped = 0;
        for (int s = 0; s < shadow.SegmentCount; s++)
            if (!ReleaseDataPage(queue, shadow.GrantRefs[s], shadow.Pages[s], shadow.Persistent[s])) stillMapped = shadow.GrantRefs[s];
        shadow.SegmentCount = 0;
        shadow.Operation = null;
        queue.FreeIds.Push(id);
        Interlocked.Decrement(ref _inFlight);
        return stillMapped;
    }

    private string QueueName(BlkFrontQueue queue) => _queues.Length > 1 ? $" on queue {queue.Index}" : "";
}
