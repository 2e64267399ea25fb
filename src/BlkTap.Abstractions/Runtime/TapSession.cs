namespace BlkTap;

/// <summary>
/// One frontend connected to a tap: a ring from a Xen or emulated domain, an shmring client, an NBD
/// client connection. The runtime's transports derive from it; hooks read it.
/// </summary>
/// <remarks>
/// Threading: the properties are read and written on the tap's loop thread (hooks, control events).
/// <see cref="Signal"/> is safe from any thread. The protected members are called by the runtime on
/// the loop thread only.
/// </remarks>
public abstract class TapSession
{
    private int _signalled;
    private Dictionary<object, object>? _items;

    /// <summary>Creates a session.</summary>
    /// <param name="name">A short name for logs (e.g. "dom3/51712").</param>
    /// <param name="domainId">The frontend's domain (0 for non-Xen transports).</param>
    /// <param name="imageId">The image identifier given at attach (xenstore <c>params</c>), if any.</param>
    protected TapSession(string name, ushort domainId, string? imageId)
    {
        Name = name;
        DomainId = domainId;
        ImageId = imageId;
    }

    /// <summary>A number unique within the runtime, assigned when the session is attached.</summary>
    public int Id { get; internal set; }

    /// <summary>A short name for logs.</summary>
    public string Name { get; }

    /// <summary>The frontend domain.</summary>
    public ushort DomainId { get; }

    /// <summary>
    /// The image identifier passed at attach (the 2005 Xen blktap's second TODO, "pass a image identifier in the
    /// connect message": Xen's <c>tools/blktap/README</c>), or null.
    /// </summary>
    public string? ImageId { get; }

    /// <summary>The runtime the session is attached to.</summary>
    public TapRuntime Runtime { get; internal set; } = null!;

    /// <summary>Disk capacity in 512-byte sectors, as the frontend is told. Set during Attach.</summary>
    public ulong Sectors { get; set; }

    /// <summary>The disk's logical sector size as the frontend is told (<c>sector-size</c>): 512 unless a hook says otherwise.</summary>
    public uint SectorSize { get; set; } = BlkifConstants.SectorSize;

    /// <summary>Whether the disk refuses writes (VDISK_READONLY).</summary>
    public bool ReadOnly { get; set; }

    /// <summary>Whether FLUSH_DISKCACHE is offered (feature-flush-cache).</summary>
    public bool SupportsFlush { get; set; } = true;

    /// <summary>Whether DISCARD is offered (feature-discard).</summary>
    public bool SupportsDiscard { get; set; }

    /// <summary>Whether the session is attached and not yet disconnected.</summary>
    public bool IsOpen { get; internal set; }

    /// <summary>Counters for this session. Updated on the loop thread.</summary>
    public SessionStatistics Statistics { get; } = new();

    /// <summary>The session's tag arrays for <see cref="Metrics.TapMetrics"/>; set at attach. Loop thread.</summary>
    internal Metrics.SessionMetrics? Metrics;

    /// <summary>Per-session state for hooks (keyed by the hook). Loop thread only.</summary>
    public IDictionary<object, object> Items => _items ??= new Dictionary<object, object>(ReferenceEqualityComparer.Instance);

    /// <summary>The xenstore <c>info</c> value for this disk.</summary>
    public VdiskInfo Info => ReadOnly ? VdiskInfo.ReadOnly : VdiskInfo.None;

    /// <summary>Asks the loop to call <see cref="Process"/> soon. Safe from any thread; coalesces.</summary>
    public void Signal()
    {
        var runtime = Runtime;
        if (runtime == null) return;
        if (Interlocked.Exchange(ref _signalled, 1) == 0) runtime.EnqueueSignal(this);
    }

    internal void ClearSignal() => Volatile.Write(ref _signalled, 0);

    /// <summary>Loop thread: the session has completions its transport has not published yet this pass (in the runtime's list).</summary>
    internal bool PendingFlush;

    /// <summary>Loop thread: take whatever requests the frontend has sent and submit them with <see cref="TapRuntime.Submit"/>.</summary>
    protected internal abstract void Process();

    /// <summary>
    /// Loop thread: the request's response (its <see cref="TapRequest.Status"/>) has passed the response
    /// hooks; deliver it to the frontend (e.g. queue it on the ring) and release the request's mappings.
    /// The request returns to the pool right after this returns.
    /// </summary>
    protected internal abstract void Complete(TapRequest request);

    /// <summary>Loop thread, once per loop pass after completions: publish queued responses and notify once.</summary>
    protected internal virtual void FlushCompletions() { }

    /// <summary>Loop thread: the session was disconnected; release the transport (after in-flight requests end).</summary>
    protected internal virtual void OnClosed(string? reason) { }

    /// <inheritdoc/>
    public override string ToString() => Name;
}

/// <summary>Request counters of one session. Written on the loop thread; reads from elsewhere are approximate.</summary>
public sealed class SessionStatistics
{
    /// <summary>Requests answered.</summary>
    public long Requests;
    /// <summary>Requests answered with a status other than OKAY.</summary>
    public long Errors;
    /// <summary>Bytes read by the frontend.</summary>
    public long BytesRead;
    /// <summary>Bytes written by the frontend.</summary>
    public long BytesWritten;
    /// <summary>Malformed requests answered without reaching the hooks.</summary>
    public long Rejected;
}
