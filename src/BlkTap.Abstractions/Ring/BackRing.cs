namespace BlkTap;

/// <summary>
/// The backend's view of a shared ring (ring.h's <c>blkif_back_ring</c>): consumes requests, produces
/// responses. The frontend is untrusted: a producer index that claims more requests than the ring can
/// hold is reported as a protocol error, never read past.
/// </summary>
/// <remarks>
/// Threading: not thread-safe; one thread (the tap loop) drives a back ring. The memory is shared with
/// a frontend that runs concurrently and may write anything at any time. The memory must outlive this
/// object.
/// </remarks>
public sealed class BackRing
{
    private readonly SharedRingMemory _shared;
    private readonly int _entrySize; // Layout.RingEntrySize, computed once (it is on every request's path)

    /// <summary>Creates a view of the ring at <paramref name="address"/> (BACK_RING_INIT).</summary>
    public BackRing(nint address, int length, BlkifLayout layout)
        : this(address, length, layout, 0)
    {
    }

    /// <summary>
    /// BACK_RING_ATTACH: a view whose private indices (req_cons, rsp_prod_pvt) start at
    /// <paramref name="index"/> instead of 0, for a ring already in use (tests start near 2^32 to
    /// exercise index wrap-around).
    /// </summary>
    internal BackRing(nint address, int length, BlkifLayout layout, uint index)
    {
        _shared = new SharedRingMemory(address, length);
        Layout = layout;
        _entrySize = layout.RingEntrySize;
        Size = SharedRingLayout.EntryCount(length, _entrySize);
        RequestConsumer = index;
        ResponseProducerPrivate = index;
    }

    /// <summary>The ABI of this ring.</summary>
    public BlkifLayout Layout { get; }

    /// <summary>Number of entries (a power of two).</summary>
    public uint Size { get; }

    /// <summary>req_cons: requests consumed so far.</summary>
    public uint RequestConsumer { get; private set; }

    /// <summary>rsp_prod_pvt: responses produced locally, not necessarily published.</summary>
    public uint ResponseProducerPrivate { get; private set; }

    /// <summary>
    /// req_prod as the frontend last published it in shared memory (read now, untrusted: for checks
    /// and diagnostics; consuming goes through <see cref="UnconsumedRequests"/>).
    /// </summary>
    public uint SharedRequestProducer => _shared.ReqProd;

    /// <summary>
    /// rsp_prod as published in shared memory (read now). Only the backend writes it, and
    /// SHARED_RING_INIT sets it to 0: on a ring this view has not answered on, anything else means
    /// the frontend did not initialise the ring (a transport may check it at connect).
    /// </summary>
    public uint SharedResponseProducer => _shared.RspProd;

    /// <summary>Requests consumed and not yet answered.</summary>
    public uint Outstanding => unchecked(RequestConsumer - ResponseProducerPrivate);

    /// <summary>
    /// Requests published and not consumed, or -1 on a protocol error: req_prod claims more requests
    /// than the ring holds (RING_REQUEST_PROD_OVERFLOW: req_prod - rsp_prod_pvt &gt; size), or req_prod
    /// moved back behind req_cons. A non-negative result never exceeds the free slots
    /// (size - <see cref="Outstanding"/>), so consuming that many never overwrites an unanswered slot.
    /// </summary>
    public long UnconsumedRequests()
    {
        uint prod = _shared.ReqProd; // acquire load: entries are read after the index (xen_rmb)
        if (unchecked(prod - ResponseProducerPrivate) > Size) return -1;
        // NOTE: ring.h XEN_RING_NR_UNCONSUMED_REQUESTS clamps req_prod - req_cons to
        // size - (req_cons - rsp_prod_pvt); a req_prod behind req_cons would otherwise read as ~2^32
        // requests. Here that rewind is reported as the protocol error it is.
        uint unconsumed = unchecked(prod - RequestConsumer);
        if (unconsumed > Size - Outstanding) return -1;
        return unconsumed;
    }

    /// <summary>
    /// Decodes the next request into <paramref name="request"/> (copying it out of shared memory once)
    /// and advances req_cons. Call only when <see cref="UnconsumedRequests"/> is positive.
    /// </summary>
    public void TakeRequest(out BlkifRequest request)
    {
        // NOTE: ring.h RING_REQUEST_CONS_OVERFLOW: consuming a slot whose response is still owed would
        // let the next response overwrite an unread request.
        if (Outstanding >= Size) throw new InvalidOperationException($"all {Size} ring slots hold unanswered requests; answer one before taking another");
        BlkifCodec.DecodeRequest(_shared.Entry(RequestConsumer, Size, _entrySize), Layout, out request);
        RequestConsumer++;
    }

    /// <summary>Writes a response into the next slot and advances rsp_prod_pvt (not yet published).</summary>
    public void EnqueueResponse(in BlkifResponse response)
    {
        if (Outstanding == 0) throw new InvalidOperationException("no outstanding request to answer");
        BlkifCodec.EncodeResponse(response, Layout, _shared.Entry(ResponseProducerPrivate, Size, _entrySize));
        ResponseProducerPrivate++;
    }

    /// <summary>
    /// RING_PUSH_RESPONSES_AND_CHECK_NOTIFY: publishes rsp_prod; true if the frontend asked to be
    /// notified for any newly published response.
    /// </summary>
    public bool PushResponsesAndCheckNotify()
    {
        uint old = _shared.RspProd;
        uint @new = ResponseProducerPrivate;
        _shared.RspProd = @new;
        Interlocked.MemoryBarrier();
        return unchecked(@new - _shared.RspEvent) < unchecked(@new - old);
    }

    /// <summary>
    /// RING_FINAL_CHECK_FOR_REQUESTS: unconsumed requests if any; otherwise sets req_event so the
    /// frontend notifies on the next request, and checks again. -1 on protocol error.
    /// </summary>
    public long FinalCheckForRequests()
    {
        long n = UnconsumedRequests();
        if (n != 0) return n;
        _shared.ReqEvent = RequestConsumer + 1;
        Interlocked.MemoryBarrier();
        return UnconsumedRequests();
    }
}
