using System.Diagnostics;

namespace BlkTap;

public sealed partial class TapRuntime
{
    // The loop: the work queue any thread feeds, one pass (RunOnce), the run and stop of the loop thread.

    /// <summary>Runs <paramref name="action"/> on the loop thread. Safe from any thread.</summary>
    public void Post(Action action) => Enqueue(new WorkItem(WorkKind.Action, null, action));

    internal void EnqueueSignal(TapSession session) => Enqueue(new WorkItem(WorkKind.Signal, null, null, session));

    private void Enqueue(in WorkItem item)
    {
        _work.Enqueue(item);
        var external = _externalWake;
        if (external != null) external();
        // Only a loop that is (about to be) asleep needs a wake-up; the exchange lets exactly one producer send it.
        else if (Volatile.Read(ref _sleeping) == 1 && Interlocked.Exchange(ref _sleeping, 0) == 1) _waiter.Wake();
    }

    /// <summary>
    /// Loop thread: runs <paramref name="handler"/> once at the end of the current pass, after every response of the
    /// pass has been delivered (to gather per-pass work, such as one socket write for many replies). The caller
    /// avoids scheduling the same handler twice in one pass.
    /// </summary>
    public void RunAtEndOfPass(IEndOfPassHandler handler)
    {
        ArgumentNullException.ThrowIfNull(handler);
        _passEnd.Add(handler);
    }

    /// <summary>
    /// Lets an external scheduler drive the loop instead of <see cref="Run"/>: <paramref name="wake"/>
    /// is called (from any thread) whenever work arrives, and the scheduler then calls
    /// <see cref="RunOnce"/> on its own thread, which becomes the loop thread.
    /// </summary>
    public void UseExternalDriver(Action wake)
    {
        _externalWake = wake ?? throw new ArgumentNullException(nameof(wake));
        if (!_work.IsEmpty) wake();
    }

    /// <summary>True when work is queued for the loop.</summary>
    public bool HasPendingWork => !_work.IsEmpty;

    /// <summary>
    /// Runs every queued piece of work once (posted actions, session signals, injected responses,
    /// resumed requests), then publishes responses. Returns how many items ran. The caller becomes the
    /// loop thread for the duration.
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
            switch (item.Kind)
            {
                case WorkKind.Complete:
                    item.Request!.Status = item.Request.PendingStatus;
                    Finish(item.Request);
                    break;
                case WorkKind.Resume:
                    Dispatch(item.Request!);
                    break;
                case WorkKind.Signal:
                    var s = item.Session!;
                    s.ClearSignal();
                    if (s.IsOpen)
                    {
                        try { s.Process(); }
                        catch (Exception ex)
                        {
                            Report(TapDiagnosticLevel.Error, s, "transport failed while taking requests", ex);
                            CloseSession(s, "transport failure: " + ex.Message);
                        }
                    }
                    break;
                case WorkKind.Poll:
                    RunPoll(item.Poll!);
                    break;
                case WorkKind.Action:
                    try { item.Action!(); }
                    catch (Exception ex) { Report(TapDiagnosticLevel.Error, null, "posted action threw", ex); }
                    break;
            }
        }
        FlushDirty();
        RunPassEnd();
        return done;
    }

    private void RunPassEnd()
    {
        // Handlers may schedule others (or themselves, for the next pass); run what is there now.
        int count = _passEnd.Count;
        for (int i = 0; i < count; i++)
        {
            try { _passEnd[i].OnEndOfPass(); }
            catch (Exception ex) { Report(TapDiagnosticLevel.Error, null, "end-of-pass handler threw", ex); }
        }
        _passEnd.RemoveRange(0, count);
    }

    private void FlushDirty()
    {
        for (int i = 0; i < _dirty.Count; i++)
        {
            var s = _dirty[i];
            s.PendingFlush = false;
            try { s.FlushCompletions(); }
            catch (Exception ex) { Report(TapDiagnosticLevel.Error, s, "transport failed to publish responses", ex); }
        }
        _dirty.Clear();
    }

    /// <summary>Runs the loop on the calling thread until <see cref="Stop"/> (blktap_listen).</summary>
    public void Run() => RunCore(CancellationToken.None);

    /// <summary>Runs the loop on a dedicated thread until <paramref name="cancellationToken"/> or <see cref="Stop"/>.</summary>
    public Task RunAsync(CancellationToken cancellationToken = default)
    {
        var tcs = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var thread = new Thread(() =>
        {
            try { RunCore(cancellationToken); tcs.SetResult(); }
            catch (Exception ex) { tcs.SetException(ex); }
        })
        { IsBackground = true, Name = $"blktap-loop:{Options.Name}" };
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

    /// <summary>Asks the loop to return. Safe from any thread.</summary>
    public void Stop()
    {
        _stopping = true;
        _waiter.Wake();
    }
}
