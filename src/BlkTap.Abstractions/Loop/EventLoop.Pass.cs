using System.Diagnostics;
using System.Runtime.CompilerServices;

namespace BlkTap.Loop;

public sealed partial class EventLoop
{
    // The loop: the work queue any thread feeds, one pass (RunOnce), the run and stop of the loop thread.

    /// <inheritdoc/>
    public void Post(Action action)
    {
        ArgumentNullException.ThrowIfNull(action);
        Enqueue(new WorkItem(WorkKind.Action, action));
    }

    /// <inheritdoc/>
    public void Post(ILoopWorkHandler handler, object? state, int code)
    {
        ArgumentNullException.ThrowIfNull(handler);
        Enqueue(new WorkItem(WorkKind.Handler, handler, state, code));
    }

    /// <summary>Any thread: queues a registration's hand-off (its readiness was seen off the loop).</summary>
    internal void Enqueue(QueuedRegistration registration) => Enqueue(new WorkItem(WorkKind.Poll, registration));

    private void Enqueue(in WorkItem item)
    {
        _work.Enqueue(item);
        var external = _externalWake;
        if (external != null) external();
        // Only a loop that is (about to be) asleep needs a wake-up; the exchange lets exactly one producer send it.
        else if (Volatile.Read(ref _sleeping) == 1 && Interlocked.Exchange(ref _sleeping, 0) == 1) _waiter.Wake();
    }

    /// <inheritdoc/>
    public void RunAtEndOfPass(IEndOfPassHandler handler)
    {
        ArgumentNullException.ThrowIfNull(handler);
        _passEnd.Add(handler);
    }

    /// <summary>
    /// Lets an external scheduler drive the loop instead of <see cref="Run"/>: <paramref name="wake"/> is called (from
    /// any thread) whenever work arrives, and the scheduler then calls <see cref="RunOnce"/> on its own thread, which
    /// becomes the loop thread (the emulator's deterministic mode). Descriptors are then not watched
    /// (<see cref="SupportsDescriptors"/> is false). Call before the loop runs.
    /// </summary>
    public void UseExternalDriver(Action wake)
    {
        _externalWake = wake ?? throw new ArgumentNullException(nameof(wake));
        if (!_work.IsEmpty) wake();
    }

    /// <summary>
    /// Runs one pass without sleeping: the handlers of ready descriptors, every piece of work queued when the pass began
    /// (work posted meanwhile waits for the next pass), the pass finishers, then the end-of-pass handlers. Returns how
    /// many handlers and items ran. The caller becomes the loop thread; one caller at a time.
    /// </summary>
    public int RunOnce()
    {
        _loopThreadId = Environment.CurrentManagedThreadId;
        // One clock read per pass serves every request the pass takes (they arrived together).
        _passTimestamp = Stopwatch.GetTimestamp();
        int done = 0;
        if (_descriptors > 0) done += DispatchReady(_waiter.Wait(0, _ready));
        int budget = _work.Count;
        while (budget-- > 0 && _work.TryDequeue(out var item))
        {
            done++;
            try
            {
                switch (item.Kind)
                {
                    case WorkKind.Handler:
                        Unsafe.As<ILoopWorkHandler>(item.Target).RunOnLoop(item.State, item.Code);
                        break;
                    case WorkKind.Poll:
                        Unsafe.As<QueuedRegistration>(item.Target).Run();
                        break;
                    default:
                        Unsafe.As<Action>(item.Target)();
                        break;
                }
            }
            catch (Exception ex) { ReportHandlerFailure(item.Kind == WorkKind.Action ? "posted action threw" : "posted work threw", ex); }
        }
        RunFinishers();
        RunPassEnd();
        return done;
    }

    private void RunFinishers()
    {
        var finishers = Volatile.Read(ref _finishers);
        for (int i = 0; i < finishers.Length; i++)
        {
            try { finishers[i].OnEndOfPass(); }
            catch (Exception ex) { ReportHandlerFailure("pass finisher threw", ex); }
        }
    }

    private void RunPassEnd()
    {
        // Handlers may schedule others (or themselves, for the next pass); run what is there now.
        int count = _passEnd.Count;
        if (count == 0) return;
        for (int i = 0; i < count; i++)
        {
            try { _passEnd[i].OnEndOfPass(); }
            catch (Exception ex) { ReportHandlerFailure("end-of-pass handler threw", ex); }
        }
        _passEnd.RemoveRange(0, count);
    }

    /// <summary>Runs the loop on the calling thread, which becomes the loop thread, until <see cref="Stop"/> (blktap_listen).</summary>
    public void Run() => RunCore(CancellationToken.None);

    /// <summary>
    /// Runs the loop on a dedicated background thread (named <c>blktap-loop:NAME</c>) until
    /// <paramref name="cancellationToken"/> fires or <see cref="Stop"/>. The task completes when the loop has returned.
    /// Any thread.
    /// </summary>
    public Task RunAsync(CancellationToken cancellationToken = default)
    {
        var tcs = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var thread = new Thread(() =>
        {
            try { RunCore(cancellationToken); tcs.SetResult(); }
            catch (Exception ex) { tcs.SetException(ex); }
        })
        { IsBackground = true, Name = $"blktap-loop:{Name}" };
        thread.Start();
        return tcs.Task;
    }

    private void RunCore(CancellationToken ct)
    {
        using var reg = ct.Register(Stop);
        Interlocked.Increment(ref _running);
        try { Loop(); }
        finally
        {
            Interlocked.Decrement(ref _running);
            if (Volatile.Read(ref _disposed) == 1) ReleaseWaiter();
        }
    }

    private void Loop()
    {
        while (!_stopping)
        {
            if (RunOnce() > 0 || _passEnd.Count > 0) continue;
            Interlocked.Exchange(ref _sleeping, 1);
            if (!_work.IsEmpty || _stopping) { Volatile.Write(ref _sleeping, 0); continue; }
            int ready = _waiter.Wait(-1, _ready);
            Volatile.Write(ref _sleeping, 0);
            _passTimestamp = Stopwatch.GetTimestamp(); // the handlers below may take requests
            DispatchReady(ready);
        }
    }

    /// <inheritdoc/>
    public void Stop()
    {
        _stopping = true;
        if (Volatile.Read(ref _waiterReleased) != 0) return;
        try { _waiter.Wake(); }
        catch (ObjectDisposedException) { /* released meanwhile: no loop left to wake */ }
    }
}
