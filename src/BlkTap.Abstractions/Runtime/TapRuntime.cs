using System.Collections.Concurrent;
using System.Diagnostics;

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
    // This file: hook chains, state, diagnostics and disposal. The rest by concern: TapRuntime.Sessions.cs (attach,
    // connect, close), TapRuntime.Requests.cs (a request through the hooks to the backend, and its response back),
    // TapRuntime.Injection.cs (answers and resumes from any thread), TapRuntime.Loop.cs (work queue and passes),
    // TapRuntime.Poll.cs (descriptors, sockets and wait handles on the loop).

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
