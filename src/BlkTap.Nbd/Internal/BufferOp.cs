using System.Collections.Concurrent;
using System.Threading.Tasks.Sources;

namespace BlkTap.Nbd.Internal;

/// <summary>
/// One pooled <see cref="BufferRequest"/> awaited as a <see cref="ValueTask{TResult}"/>: no allocation per NBD
/// command once warm. Submitted from any thread; completed on the loop thread, where the continuation runs inline:
/// it only queues the reply on the socket (asynchronous sends and lock waits return at once if they cannot finish),
/// so the loop is never blocked, and a thread-pool hop per request is saved.
/// </summary>
internal sealed class BufferOp : IValueTaskSource<BlkifStatus>
{
    private static readonly ConcurrentQueue<BufferOp> Pool = new();

    private ManualResetValueTaskSourceCore<BlkifStatus> _core = new() { RunContinuationsAsynchronously = false };
    private readonly BufferRequest _request = new();
    private readonly Action<BufferRequest> _completed;

    private BufferOp() => _completed = r => Complete(r.Status);

    /// <summary>Submits one request to <paramref name="session"/> and returns its outcome.</summary>
    public static ValueTask<BlkifStatus> Run(BufferSession session, BlkifOperation op, ulong sector, nint data, int length,
        bool fua = false, ulong discardSectors = 0)
    {
        if (!Pool.TryDequeue(out var o)) o = new BufferOp();
        var r = o._request;
        r.Operation = op;
        r.Sector = sector;
        r.Data = data;
        r.Length = length;
        r.ForceUnitAccess = fua;
        r.DiscardSectors = discardSectors;
        r.Status = BlkifStatus.Okay;
        r.Completed = o._completed;
        var task = new ValueTask<BlkifStatus>(o, o._core.Version);
        session.Submit(r);
        return task;
    }

    private void Complete(BlkifStatus status) => _core.SetResult(status);

    public BlkifStatus GetResult(short token)
    {
        var status = _core.GetResult(token);
        _core.Reset();
        _request.Completed = null;
        _request.Data = 0;
        Pool.Enqueue(this);
        return status;
    }

    public ValueTaskSourceStatus GetStatus(short token) => _core.GetStatus(token);

    public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _core.OnCompleted(continuation, state, token, flags);
}
