namespace BlkTap;

/// <summary>
/// The frontend's view of a shared ring (ring.h's <c>blkif_front_ring</c>): produces requests,
/// consumes responses.
/// </summary>
/// <remarks>
/// Threading: not thread-safe; one thread drives a front ring. The memory is shared with a backend
/// that runs concurrently; ordering follows ring.h (xen_wmb before publishing req_prod, xen_mb before
/// reading rsp_event / req_event). The memory must outlive this object.
/// </remarks>
public sealed class FrontRing
{
    private readonly SharedRingMemory _shared;
    private readonly int _entrySize; // Layout.RingEntrySize, computed once (it is on every request's path)

    /// <summary>Creates a view of the ring at <paramref name="address"/> (FRONT_RING_INIT).</summary>
    /// <param name="address">The first byte of the shared ring.</param>
    /// <param name="length">Bytes of the ring (4096 &lt;&lt; ring-page-order).</param>
    /// <param name="layout">The ABI, which fixes the entry size.</param>
    /// <param name="initialiseShared">Whether to run SHARED_RING_INIT on the memory first.</param>
    public FrontRing(nint address, int length, BlkifLayout layout, bool initialiseShared)
        : this(address, length, layout, 0)
    {
        if (initialiseShared) _shared.Initialise();
    }

    /// <summary>
    /// FRONT_RING_ATTACH: a view whose private indices (req_prod_pvt, rsp_cons) start at
    /// <paramref name="index"/> instead of 0, for a ring already in use (tests start near 2^32 to
    /// exercise index wrap-around). The shared header is not touched.
    /// </summary>
    internal FrontRing(nint address, int length, BlkifLayout layout, uint index)
    {
        _shared = new SharedRingMemory(address, length);
        Layout = layout;
        _entrySize = layout.RingEntrySize;
        Size = SharedRingLayout.EntryCount(length, _entrySize);
        RequestProducerPrivate = index;
        ResponseConsumer = index;
    }

    /// <summary>The ABI of this ring.</summary>
    public BlkifLayout Layout { get; }

    /// <summary>Address of the shared ring (for tools and hostile tests that write it directly).</summary>
    public nint Address => _shared.Address;

    /// <summary>Number of entries (a power of two).</summary>
    public uint Size { get; }

    /// <summary>req_prod_pvt: requests produced locally, not necessarily published.</summary>
    public uint RequestProducerPrivate { get; private set; }

    /// <summary>rsp_cons: responses consumed so far.</summary>
    public uint ResponseConsumer { get; private set; }

    /// <summary>RING_FREE_REQUESTS: slots free for new requests.</summary>
    public uint FreeRequests => Size - (RequestProducerPrivate - ResponseConsumer);

    /// <summary>RING_FULL.</summary>
    public bool IsFull => FreeRequests == 0;

    /// <summary>The slot for the next request; call <see cref="CommitRequest"/> after filling it.</summary>
    public Span<byte> NextRequestSlot() => _shared.Entry(RequestProducerPrivate, Size, _entrySize);

    /// <summary>Encodes <paramref name="request"/> into the next slot and advances req_prod_pvt.</summary>
    public void EnqueueRequest(in BlkifRequest request)
    {
        if (IsFull) throw new InvalidOperationException("the ring is full");
        BlkifCodec.EncodeRequest(request, Layout, NextRequestSlot());
        RequestProducerPrivate++;
    }

    /// <summary>Advances req_prod_pvt past a slot filled through <see cref="NextRequestSlot"/>.</summary>
    public void CommitRequest()
    {
        if (IsFull) throw new InvalidOperationException("the ring is full");
        RequestProducerPrivate++;
    }

    /// <summary>
    /// RING_PUSH_REQUESTS_AND_CHECK_NOTIFY: publishes req_prod and returns whether the backend asked to
    /// be notified for any of the newly published requests.
    /// </summary>
    public bool PushRequestsAndCheckNotify()
    {
        uint old = _shared.ReqProd;
        uint @new = RequestProducerPrivate;
        _shared.ReqProd = @new;          // release store: xen_wmb() then the write
        Interlocked.MemoryBarrier();     // xen_mb(): backend sees the requests before we read req_event
        return unchecked(@new - _shared.ReqEvent) < unchecked(@new - old);
    }

    /// <summary>
    /// Responses published but not consumed (RING_HAS_UNCONSUMED_RESPONSES), or -1 when the backend
    /// claims more responses than there are outstanding requests (a protocol error).
    /// </summary>
    public long UnconsumedResponses()
    {
        uint pending = unchecked(_shared.RspProd - ResponseConsumer);
        uint outstanding = unchecked(RequestProducerPrivate - ResponseConsumer);
        return pending > outstanding ? -1 : pending;
    }

    /// <summary>Decodes the next response and advances rsp_cons. Call only when one is unconsumed.</summary>
    public BlkifResponse TakeResponse()
    {
        if (ResponseConsumer == RequestProducerPrivate) throw new InvalidOperationException("no outstanding request: there is no response to take");
        var r = BlkifCodec.DecodeResponse(_shared.Entry(ResponseConsumer, Size, _entrySize), Layout);
        ResponseConsumer++;
        return r;
    }

    /// <summary>
    /// RING_FINAL_CHECK_FOR_RESPONSES: true if responses are waiting; otherwise sets rsp_event so the
    /// backend notifies on the next one, and checks again to close the race. -1 on protocol error.
    /// </summary>
    public long FinalCheckForResponses()
    {
        long n = UnconsumedResponses();
        if (n != 0) return n;
        _shared.RspEvent = ResponseConsumer + 1;
        Interlocked.MemoryBarrier();
        return UnconsumedResponses();
    }
}
