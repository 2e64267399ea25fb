using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.Sockets;

namespace BlkTap;

/// <summary>
/// The tap: the 2005 blktaplib's hook chains and event loop. Sessions (frontends) feed it requests;
/// request hooks run in registration order and Pass, Respond or Steal; passed requests go to the
/// <see cref="Backend"/> (interposition) or are answered EOPNOTSUPP (terminating); every response runs
/// through the response hooks before it reaches its frontend.
/// </summary>
/// <remarks>
/// Threading: one loop, run to completion. Hooks, control events and session processing all run on
/// the loop thread (the thread in <see cref="Run"/>, or the caller of <see cref="RunOnce"/> when an
/// external scheduler drives the loop). <see cref="InjectResponse"/>, <see cref="Resume"/>,
/// <see cref="Post"/>, <see cref="Stop"/> and <see cref="TapSession.Signal"/> are safe from any
/// thread. Register hooks before the first request arrives.
/// </remarks>
public sealed partial class TapRuntime : IDisposable
{
    private readonly List<(string Name, IRequestHook Hook)> _requestHooks = new();
    private readonly List<(string Name, IResponseHook Hook)> _responseHooks = new();
    private readonly List<(string Name, IControlHook Hook)> _controlHooks = new();
    private IRequestHook[] _requestChain = Array.Empty<IRequestHook>();
    private IResponseHook[] _responseChain = Array.Empty<IResponseHook>();
    private IControlHook[] _controlChain = Array.Empty<IControlHook>();

    private readonly ConcurrentQueue<WorkItem> _work = new();
    private readonly ILoopWaiter _waiter;
    private readonly PollReady[] _ready = new PollReady[64];
    private readonly List<IEndOfPassHandler> _passEnd = new();
    private int _sleeping;
    private long _passTimestamp = Stopwatch.GetTimestamp();
    private readonly Stack<TapRequest> _pool = new();
    private readonly List<TapSession> _sessions = new();
    private readonly List<TapSession> _dirty = new();
    private Action? _externalWake;
    private volatile bool _stopping;
    private int _loopThreadId;
    private int _nextSessionId;
    private long _inFlight;

    /// <summary>Creates a runtime.</summary>
    public TapRuntime(TapRuntimeOptions? options = null)
    {
        Options = options ?? new TapRuntimeOptions();
        _waiter = Options.Waiter ?? new EventLoopWaiter();
    }

    /// <summary>True when the loop can watch file descriptors (<see cref="AttachPoll(int, PollEvents, Action{PollEvents})"/>).</summary>
    public bool SupportsDescriptors => _waiter.SupportsDescriptors && _externalWake == null;

    /// <summary>True on the thread currently running the loop.</summary>
    public bool IsLoopThread => Volatile.Read(ref _loopThreadId) == Environment.CurrentManagedThreadId;

    /// <summary>The settings.</summary>
    public TapRuntimeOptions Options { get; }

    /// <summary>
    /// Where passed requests go (interposition placement). Null: the tap terminates, and a request that
    /// passes every hook is answered EOPNOTSUPP.
    /// </summary>
    public ITapBackend? Backend { get; set; }

    /// <summary>Sessions currently attached. Loop thread.</summary>
    public IReadOnlyList<TapSession> Sessions => _sessions;

    /// <summary>Requests inside the runtime (in hooks, stolen, or at the backend).</summary>
    public long InFlight => Interlocked.Read(ref _inFlight);

    /// <summary>Names of the request hooks in order.</summary>
    public IReadOnlyList<string> RequestHookNames => _requestHooks.ConvertAll(h => h.Name);

    /// <summary>Names of the response hooks in order.</summary>
    public IReadOnlyList<string> ResponseHookNames => _responseHooks.ConvertAll(h => h.Name);

    /// <summary>Adds a control hook at the end of the control chain (blktap_register_ctrl_hook).</summary>
    public void RegisterControlHook(string name, IControlHook hook)
    {
        ArgumentNullException.ThrowIfNull(hook);
        _controlHooks.Add((name, hook));
        _controlChain = _controlHooks.ConvertAll(h => h.Hook).ToArray();
    }

    /// <summary>Adds a request hook at the end of the request chain (blktap_register_request_hook).</summary>
    public void RegisterRequestHook(string name, IRequestHook hook)
    {
        ArgumentNullException.ThrowIfNull(hook);
        _requestHooks.Add((name, hook));
        _requestChain = _requestHooks.ConvertAll(h => h.Hook).ToArray();
    }

    /// <summary>Adds a response hook at the end of the response chain (blktap_register_response_hook).</summary>
    public void RegisterResponseHook(string name, IResponseHook hook)
    {
        ArgumentNullException.ThrowIfNull(hook);
        _responseHooks.Add((name, hook));
        _responseChain = _responseHooks.ConvertAll(h => h.Hook).ToArray();
    }

    // ------------------------------------------------------------------ sessions

    /// <summary>
    /// Loop thread: attaches a session: assigns its id and runs the Attach control event, during which
    /// hooks may set its disk parameters. Call <see cref="ConnectSession"/> once its ring is live.
    /// </summary>
    public void AttachSession(TapSession session)
    {
        AssertLoopThread();
        if (session.Runtime != null && session.IsOpen) throw new InvalidOperationException($"session {session.Name} is already attached");
        session.Runtime = this;
        session.Id = ++_nextSessionId;
        session.IsOpen = true;
        _sessions.Add(session);
        RaiseControl(new ControlEvent(ControlEventKind.Attach, session));
    }

    /// <summary>Loop thread: the session's frontend is connected; runs the Connect control event and looks for requests.</summary>
    public void ConnectSession(TapSession session)
    {
        AssertLoopThread();
        RaiseControl(new ControlEvent(ControlEventKind.Connect, session));
        session.Signal();
    }

    /// <summary>
    /// Loop thread: closes a session (frontend gone, protocol error, shutdown). Runs the Disconnect
    /// control event. Requests still stolen or at the backend complete later without reaching the
    /// frontend. No other session notices.
    /// </summary>
    public void CloseSession(TapSession session, string? reason = null)
    {
        AssertLoopThread();
        if (!session.IsOpen) return;
        session.IsOpen = false;
        _sessions.Remove(session);
        if (reason != null) Report(TapDiagnosticLevel.Warning, session, $"session closed: {reason}");
        RaiseControl(new ControlEvent(ControlEventKind.Disconnect, session, reason));
        try { session.OnClosed(reason); }
        catch (Exception ex) { Report(TapDiagnosticLevel.Error, session, "transport failed while closing", ex); }
    }

    private void RaiseControl(ControlEvent e)
    {
        foreach (var hook in _controlChain)
        {
            try { hook.OnControl(e); }
            catch (Exception ex) { Report(TapDiagnosticLevel.Error, e.Session, $"control hook failed on {e.Kind}", ex); }
        }
    }

    // ------------------------------------------------------------------ requests

    /// <summary>Loop thread (transports): a request context from the pool, reset for <paramref name="session"/>.</summary>
    public TapRequest RentRequest(TapSession session, ulong id, BlkifOperation operation, ulong sector) =>
        RentRequest(session, id, operation, operation, sector);

    internal TapRequest RentRequest(TapSession session, ulong id, BlkifOperation operation, BlkifOperation wireOperation, ulong sector)
    {
        var r = _pool.Count > 0 ? _pool.Pop() : new TapRequest(this);
        r.Reset(session, id, operation, wireOperation, sector, _passTimestamp);
        r.State = RequestState.InHooks;
        return r;
    }

    /// <summary>Loop thread (transports): adds a data segment to a rented request.</summary>
    public static void AddSegment(TapRequest request, nint address, int length) => request.AddSegment(address, length);

    /// <summary>Loop thread (transports): marks a rented request as a discard of <paramref name="sectors"/> sectors.</summary>
    public static void SetDiscard(TapRequest request, ulong sectors, byte flags) => request.SetDiscard(sectors, flags);

    /// <summary>Loop thread (transports): marks a write as needing durability before its answer.</summary>
    public static void SetForceUnitAccess(TapRequest request, bool fua) => request.SetForceUnitAccess(fua);

    /// <summary>Loop thread (transports): returns an unsubmitted request to the pool.</summary>
    public void ReturnUnsubmitted(TapRequest request)
    {
        request.State = RequestState.Free;
        request.Release();
        _pool.Push(request);
    }

    /// <summary>Loop thread (transports): runs a rented, filled request through the request hooks.</summary>
    public void Submit(TapRequest request)
    {
        Interlocked.Increment(ref _inFlight);
        request.NextHook = 0;
        Dispatch(request);
    }

    /// <summary>
    /// Loop thread (transports): answers a request without showing it to any hook (a malformed request,
    /// a request to a closed disk). Response hooks still see it.
    /// </summary>
    public void Reject(TapRequest request, BlkifStatus status)
    {
        Interlocked.Increment(ref _inFlight);
        request.Session.Statistics.Rejected++;
        request.Status = status;
        Finish(request);
    }

    private void Dispatch(TapRequest request)
    {
        var chain = _requestChain;
        while (request.NextHook < chain.Length)
        {
            var hook = chain[request.NextHook++];
            HookResult result;
            try { result = hook.OnRequest(request); }
            catch (Exception ex)
            {
                Report(TapDiagnosticLevel.Error, request.Session, $"request hook {_requestHooks[request.NextHook - 1].Name} threw on {request}", ex);
                request.Status = BlkifStatus.Error;
                result = HookResult.Respond;
            }
            if (result != HookResult.Stolen && request.State is RequestState.EarlyInject or RequestState.EarlyResume)
            {
                Report(TapDiagnosticLevel.Error, request.Session, $"request hook {_requestHooks[request.NextHook - 1].Name} injected or resumed {request} but returned {result}, not Stolen; the injection is ignored");
                request.State = RequestState.InHooks;
            }
            switch (result)
            {
                case HookResult.Pass:
                    continue;
                case HookResult.Respond:
                    Finish(request);
                    return;
                case HookResult.Stolen:
                    if (Interlocked.CompareExchange(ref request.State, RequestState.Stolen, RequestState.InHooks) == RequestState.InHooks) return;
                    if (request.State == RequestState.EarlyInject)
                    {
                        request.State = RequestState.Completing;
                        request.Status = request.PendingStatus;
                        Finish(request);
                        return;
                    }
                    // EarlyResume: go straight on to the next hook.
                    request.State = RequestState.InHooks;
                    continue;
                default:
                    Report(TapDiagnosticLevel.Error, request.Session, $"request hook returned {(int)result}, not a HookResult");
                    request.Status = BlkifStatus.Error;
                    Finish(request);
                    return;
            }
        }
        var backend = Backend;
        if (backend == null)
        {
            request.Status = BlkifStatus.NotSupported;
            Finish(request);
            return;
        }
        request.State = RequestState.AtBackend;
        try { backend.Submit(request); }
        catch (Exception ex)
        {
            Report(TapDiagnosticLevel.Error, request.Session, $"backend threw on {request}", ex);
            if (request.State == RequestState.AtBackend)
            {
                request.Status = BlkifStatus.Error;
                Finish(request);
            }
        }
    }

    /// <summary>
    /// Answers a stolen request, or one at the backend, with <paramref name="status"/>
    /// (blktap_inject_response). Safe from any thread; the response runs through the response hooks on
    /// the loop. Returns false (and does nothing) if the request is not waiting for an answer.
    /// </summary>
    public bool InjectResponse(TapRequest request, BlkifStatus status)
    {
        while (true)
        {
            int state = Volatile.Read(ref request.State);
            switch (state)
            {
                case RequestState.Stolen:
                case RequestState.AtBackend:
                    if (Interlocked.CompareExchange(ref request.State, RequestState.Completing, state) != state) continue;
                    request.PendingStatus = status;
                    Enqueue(new WorkItem(WorkKind.Complete, request));
                    return true;
                case RequestState.InHooks:
                    // The hook that is stealing it has not returned yet (another thread was quick):
                    // remember the answer; Dispatch delivers it when the hook returns Stolen.
                    request.PendingStatus = status;
                    if (Interlocked.CompareExchange(ref request.State, RequestState.EarlyInject, state) != state) continue;
                    return true;
                default:
                    return false;
            }
        }
    }

    /// <summary>
    /// Sends a stolen request on down the chain, to the hook after the one that stole it (a delay
    /// that has waited, a cache that missed). Safe from any thread, even before the stealing hook has
    /// returned. False if the request is not stolen.
    /// </summary>
    public bool Resume(TapRequest request)
    {
        while (true)
        {
            int state = Volatile.Read(ref request.State);
            if (state == RequestState.Stolen)
            {
                if (Interlocked.CompareExchange(ref request.State, RequestState.InHooks, state) != state) continue;
                Enqueue(new WorkItem(WorkKind.Resume, request));
                return true;
            }
            if (state == RequestState.InHooks)
            {
                if (Interlocked.CompareExchange(ref request.State, RequestState.EarlyResume, state) != state) continue;
                return true;
            }
            return false;
        }
    }

    private void Finish(TapRequest request)
    {
        request.State = RequestState.Completing;
        foreach (var hook in _responseChain)
        {
            try { hook.OnResponse(request); }
            catch (Exception ex)
            {
                Report(TapDiagnosticLevel.Error, request.Session, $"response hook threw on {request}", ex);
                request.Status = BlkifStatus.Error;
            }
        }
        var session = request.Session;
        var stats = session.Statistics;
        stats.Requests++;
        if (request.Status != BlkifStatus.Okay) stats.Errors++;
        else if (request.Operation == BlkifOperation.Read) stats.BytesRead += request.ByteCount;
        else if (request.HasData) stats.BytesWritten += request.ByteCount;
        try
        {
            session.Complete(request);
            // Once per pass per session; a session belongs to one runtime, so a flag on it marks membership.
            if (!session.PendingFlush)
            {
                session.PendingFlush = true;
                _dirty.Add(session);
            }
        }
        catch (Exception ex)
        {
            Report(TapDiagnosticLevel.Error, session, $"transport failed to deliver {request}", ex);
        }
        Interlocked.Decrement(ref _inFlight);
        request.State = RequestState.Free;
        request.Release();
        _pool.Push(request);
    }

    // ------------------------------------------------------------------ loop

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

    /// <summary>Loop thread: reports a diagnostic to <see cref="TapRuntimeOptions.Diagnostics"/>.</summary>
    public void Report(TapDiagnosticLevel level, TapSession? session, string message, Exception? exception = null)
    {
        try { Options.Diagnostics?.Invoke(new TapDiagnostic(level, session, message, exception)); }
        catch (Exception) { /* a broken log sink must not break the loop */ }
    }

    [Conditional("DEBUG")]
    private void AssertLoopThread()
    {
        Debug.Assert(_loopThreadId == 0 || _loopThreadId == Environment.CurrentManagedThreadId || _externalWake != null,
            "session and hook state belongs to the loop thread");
    }

    /// <summary>Stops the loop and releases the wake handle.</summary>
    public void Dispose()
    {
        Stop();
        DisposePolls();
        // A running loop may be inside Wait: it releases the waiter when it returns.
        if (Interlocked.Exchange(ref _disposed, 1) == 0 && Volatile.Read(ref _running) == 0) ReleaseWaiter();
    }

    private int _disposed, _running, _waiterReleased;

    private void ReleaseWaiter()
    {
        if (Interlocked.Exchange(ref _waiterReleased, 1) == 0) _waiter.Dispose();
    }

    private enum WorkKind : byte { Complete, Resume, Signal, Action, Poll }

    private readonly record struct WorkItem(WorkKind Kind, TapRequest? Request, Action? Action = null, TapSession? Session = null, PollRegistration? Poll = null);
}
