namespace BlkTap;

/// <summary>
/// One shared ring of a <see cref="RingSession"/>: a device has one, or one per queue when the frontend asked for
/// several (blkif.h multi-queue). Its mapping, event channel, requests in flight and persistent grants are its own;
/// a request is answered on the ring it came from (the queue rides on <see cref="TapRequest.TransportObject"/>).
/// </summary>
/// <remarks>Threading: loop thread only.</remarks>
internal sealed class RingQueue(int index, BackRing ring, IEventChannel channel, long ringHandle, PersistentGrantTable? persistent)
{
    /// <summary>The queue's number (N of <c>queue-N</c>).</summary>
    public int Index { get; } = index;

    public BackRing Ring { get; } = ring;

    public IEventChannel? Channel { get; set; } = channel;

    /// <summary>The ring pages' mapping (0: the transport owns the memory, or already unmapped).</summary>
    public long RingHandle { get; set; } = ringHandle;

    /// <summary>The ring's kept grants, or null without feature-persistent.</summary>
    public PersistentGrantTable? Persistent { get; set; } = persistent;

    /// <summary>Passes the channel's notifications to the session, held back while they keep finding nothing.</summary>
    public SpuriousEventBackoff? Backoff { get; set; }

    /// <summary>Requests taken off this ring and not yet completed (their pages may be in use).</summary>
    public int InFlight;

    /// <summary>Responses queued on the ring and not yet pushed.</summary>
    public bool PushPending;
}
