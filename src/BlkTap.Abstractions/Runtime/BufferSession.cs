using System.Collections.Concurrent;

namespace BlkTap;

/// <summary>
/// A request from a transport that carries its data in process memory (an NBD connection, a trace
/// replayer, a test): op, sector, and a pinned buffer. Reusable: fill it, submit it, and get it back
/// in <see cref="Completed"/>.
/// </summary>
/// <remarks>Threading: owned by the submitter until submitted, then by the loop until the completion callback returns.</remarks>
public sealed class BufferRequest
{
    /// <summary>The operation.</summary>
    public BlkifOperation Operation { get; set; }
    /// <summary>First 512-byte sector.</summary>
    public ulong Sector { get; set; }
    /// <summary>For discards: sectors to discard.</summary>
    public ulong DiscardSectors { get; set; }
    /// <summary>Address of the data (pinned memory that stays valid until completion); 0 for no data.</summary>
    public nint Data { get; set; }
    /// <summary>Bytes of data (a multiple of 512).</summary>
    public int Length { get; set; }
    /// <summary>For writes: make durable before answering (NBD FUA).</summary>
    public bool ForceUnitAccess { get; set; }
    /// <summary>A caller's value (an NBD cookie, an index).</summary>
    public ulong UserToken { get; set; }
    /// <summary>The outcome, set before <see cref="Completed"/> runs.</summary>
    public BlkifStatus Status { get; set; }
    /// <summary>
    /// For reads: the submitter can send the data from a file itself, so the chain may answer with a file range
    /// (<see cref="FileHandle"/>, <see cref="FileOffset"/>) instead of filling <see cref="Data"/>. Honoured only when
    /// no hook but the terminator can see the data (<see cref="TapRequest.FileReferenceAllowed"/>).
    /// </summary>
    public bool AcceptFileReference { get; set; }
    /// <summary>
    /// Set on completion: the file holding the read's <see cref="Length"/> bytes from <see cref="FileOffset"/>, when
    /// the chain answered by reference (<see cref="Data"/> was not written); null otherwise. A file in memory, open
    /// while the session is attached.
    /// </summary>
    public Microsoft.Win32.SafeHandles.SafeFileHandle? FileHandle { get; set; }
    /// <summary>Byte offset of the data in <see cref="FileHandle"/>.</summary>
    public long FileOffset { get; set; }
    /// <summary>Runs on the loop thread when the request is answered; must not block.</summary>
    public Action<BufferRequest>? Completed { get; set; }
}

/// <summary>
/// A session for transports whose requests carry data in process memory rather than granted pages:
/// the NBD export (one session per client connection), trace replay, tests.
/// </summary>
/// <remarks>
/// Threading: <see cref="Submit"/> is safe from any thread. Completions run on the loop thread.
/// Requests are validated like ring requests (range, alignment, read-only) before any hook sees them.
/// </remarks>
public sealed class BufferSession : TapSession
{
    private readonly ConcurrentQueue<BufferRequest> _incoming = new();
    private long _outstanding;

    /// <summary>Creates a session; attach it with <see cref="TapRuntime.AttachSession"/> on the loop.</summary>
    public BufferSession(string name, string? imageId = null, ushort domainId = 0) : base(name, domainId, imageId) { }

    /// <summary>Requests submitted and not yet answered.</summary>
    public long Outstanding => Interlocked.Read(ref _outstanding);

    /// <summary>Queues a request for the loop. Safe from any thread.</summary>
    public void Submit(BufferRequest request)
    {
        Interlocked.Increment(ref _outstanding);
        _incoming.Enqueue(request);
        Signal();
    }

    /// <summary>
    /// Loop thread only: starts <paramref name="request"/> at once, in the caller's pass, instead of queueing it for
    /// the next one (a transport served on the loop itself, such as the NBD server's sockets, saves the queue and a
    /// pass). Its completion may run before this returns (a terminator that answers synchronously).
    /// </summary>
    public void SubmitOnLoop(BufferRequest request)
    {
        if (!Runtime.IsLoopThread) throw new InvalidOperationException("SubmitOnLoop is for the loop thread; use Submit elsewhere");
        Interlocked.Increment(ref _outstanding);
        Start(request);
    }

    /// <inheritdoc/>
    protected internal override void Process()
    {
        while (_incoming.TryDequeue(out var b)) Start(b);
    }

    private void Start(BufferRequest b)
    {
        var runtime = Runtime;
        var r = runtime.RentRequest(this, b.UserToken, b.Operation, b.Sector);
        b.FileHandle = null;
        if (!IsOpen) { b.Status = BlkifStatus.Error; Done(b); runtime.ReturnUnsubmitted(r); return; }
        r.TransportObject = b;
        var status = RequestAdmission.Admit(r, b.Operation, b.Sector, b.Length, b.Data != 0, b.DiscardSectors, b.ForceUnitAccess);
        if (status != BlkifStatus.Okay) { runtime.Reject(r, status); return; }
        // Segments of at most one page, like a ring request's, so hooks see the same shapes.
        if (b.Operation != BlkifOperation.Discard)
            for (int at = 0; at < b.Length; at += BlkifConstants.PageSize)
                RequestAdmission.AddSegment(r, b.Data + at, Math.Min(BlkifConstants.PageSize, b.Length - at));
        r.FileReferenceAllowed = b.AcceptFileReference && b.Operation == BlkifOperation.Read && runtime.DataSeenOnlyByTerminator;
        runtime.Submit(r);
    }

    /// <inheritdoc/>
    protected internal override void Complete(TapRequest request)
    {
        if (request.TransportObject is not BufferRequest b) return;
        request.TransportObject = null;
        b.Status = request.Status;
        if (request.FileReference != null && request.Status == BlkifStatus.Okay)
        {
            b.FileHandle = request.FileReference;
            b.FileOffset = request.FileReferenceOffset;
        }
        Done(b);
    }

    private void Done(BufferRequest b)
    {
        Interlocked.Decrement(ref _outstanding);
        try { b.Completed?.Invoke(b); }
        catch (Exception ex) { Runtime.Report(TapDiagnosticLevel.Error, this, "completion callback threw", ex); }
    }

    /// <inheritdoc/>
    protected internal override void OnClosed(string? reason)
    {
        while (_incoming.TryDequeue(out var b)) { b.Status = BlkifStatus.Error; Done(b); }
    }
}
