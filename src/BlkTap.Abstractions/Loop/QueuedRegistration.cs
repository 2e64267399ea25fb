using System.Net.Sockets;

namespace BlkTap.Loop;

/// <summary>
/// A registration whose readiness another thread observes (.NET's socket engine, a thread-pool wait) and hands to the
/// loop through its work queue: the loop runs <see cref="Run"/> for each hand-off.
/// </summary>
internal abstract class QueuedRegistration(EventLoop loop, Action<PollEvents> handler) : PollRegistration(loop, handler)
{
    /// <summary>What the last hand-off reported. Written before the hand-off is queued, read on the loop thread.</summary>
    public PollEvents Ready;

    /// <summary>Loop thread: runs the handler for the hand-off, unless detached meanwhile; then re-arms the watch.</summary>
    public void Run()
    {
        if (Detached) return;
        try { Handler(Ready); }
        catch (Exception ex) { Loop.ReportHandlerFailure("poll handler threw", ex); }
        if (!Detached) Rearm();
    }

    /// <summary>Loop thread, after the handler: watches again if the kind needs it.</summary>
    protected virtual void Rearm() { }
}

/// <summary>
/// A socket watched by .NET's socket engine (on a loop that does not watch descriptors): a zero-byte receive completes
/// when data (or the end of the stream) arrives, and is re-armed after each handler call.
/// </summary>
internal sealed class SocketRegistration : QueuedRegistration
{
    private readonly Socket _socket;
    private readonly SocketAsyncEventArgs _args = new();

    public SocketRegistration(EventLoop loop, Socket socket, Action<PollEvents> handler) : base(loop, handler)
    {
        _socket = socket;
        _args.SetBuffer(Memory<byte>.Empty);
        _args.UserToken = this;
        _args.Completed += static (_, a) => ((SocketRegistration)a.UserToken!).OnReady();
    }

    /// <summary>Starts (or restarts) the zero-byte receive. Any thread.</summary>
    public void Arm()
    {
        if (Detached) return;
        bool pending;
        try { pending = _socket.ReceiveAsync(_args); }
        catch (ObjectDisposedException) { return; }
        catch (SocketException) { pending = false; }
        if (!pending) OnReady();
    }

    // A closed peer keeps the socket readable; the handler is expected to detach then.
    protected override void Rearm() => Arm();

    private void OnReady()
    {
        if (Detached) return;
        Ready = PollEvents.Readable;
        Loop.Enqueue(this);
    }

    /// <inheritdoc/>
    internal override void Release() { /* the pending receive completes with the socket's disposal, and is ignored */ }
}

/// <summary>A wait handle watched by a thread-pool wait, which hands each signal to the loop.</summary>
internal sealed class WaitHandleRegistration : QueuedRegistration
{
    private readonly RegisteredWaitHandle _wait;

    public WaitHandleRegistration(EventLoop loop, WaitHandle handle, Action<PollEvents> handler) : base(loop, handler)
    {
        _wait = ThreadPool.RegisterWaitForSingleObject(handle,
            static (state, _) =>
            {
                var r = (WaitHandleRegistration)state!;
                r.Ready = PollEvents.Signalled;
                r.Loop.Enqueue(r);
            },
            this, Timeout.Infinite, executeOnlyOnce: false);
    }

    /// <inheritdoc/>
    internal override void Release() => _wait.Unregister(null);
}
