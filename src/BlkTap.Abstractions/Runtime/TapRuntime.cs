using System.Diagnostics;
using BlkTap.Loop;

namespace BlkTap;

/// <summary>
/// The tap: the 2005 blktaplib's hook chains, on an <see cref="EventLoop"/>. Sessions (frontends) feed it requests;
/// request hooks run in registration order and Pass, Respond or Steal; passed requests go to the
/// <see cref="Backend"/> (interposition) or are answered EOPNOTSUPP (terminating); every response runs
/// through the response hooks before it reaches its frontend.
/// </summary>
/// <remarks>
/// Threading: one loop (<see cref="Loop"/>, an <see cref="EventLoop"/>), run to completion. Hooks, control events and
/// session processing all run on the loop thread (the thread in <see cref="Run"/>, or the caller of
/// <see cref="RunOnce"/> when an external scheduler drives the loop). <see cref="InjectResponse"/>, <see cref="Resume"/>,
/// <see cref="Post"/>, <see cref="Stop"/> and <see cref="TapSession.Signal"/> are safe from any
/// thread. Register hooks before the first request arrives.
/// </remarks>
public sealed partial class TapRuntime : IDisposable
{
    // This file: hook chains, state, diagnostics and disposal. The rest by concern: TapRuntime.Sessions.cs (attach,
    // connect, close), TapRuntime.Requests.cs (a request through the hooks to the backend, and its response back),
    // TapRuntime.Injection.cs (answers and resumes from any thread), TapRuntime.Loop.cs (the runtime's work on its
    // EventLoop, and the loop members kept for callers), TapRuntime.Poll.cs (descriptors, sockets and wait handles,
    // delegated to the loop). The loop itself is BlkTap.Loop.EventLoop.

    private readonly List<(string Name, IRequestHook Hook)> _requestHooks = new();
    private readonly List<(string Name, IResponseHook Hook)> _responseHooks = new();
    private readonly List<(string Name, IControlHook Hook)> _controlHooks = new();
    private IRequestHook[] _requestChain = Array.Empty<IRequestHook>();
    private IResponseHook[] _responseChain = Array.Empty<IResponseHook>();
    private IControlHook[] _controlChain = Array.Empty<IControlHook>();

    private readonly EventLoop _loop;
    private readonly bool _ownsLoop;
    private readonly LoopWork _loopWork;
    private readonly Stack<TapRequest> _pool = new();
    private readonly List<TapSession> _sessions = new();
    private readonly List<TapSession> _dirty = new();
    private int _nextSessionId;
    private long _inFlight;

    /// <summary>
    /// Creates a runtime on a loop of its own (named <see cref="TapRuntimeOptions.Name"/>, sleeping in
    /// <see cref="TapRuntimeOptions.Waiter"/>), which it runs with <see cref="Run"/> and disposes with itself. A handler
    /// of that loop that throws is reported as an error diagnostic.
    /// </summary>
    public TapRuntime(TapRuntimeOptions? options = null)
    {
        Options = options ?? new TapRuntimeOptions();
        _loop = new EventLoop(new EventLoopOptions
        {
            Name = Options.Name,
            Waiter = Options.Waiter,
            HandlerFailed = (what, ex) => Report(TapDiagnosticLevel.Error, null, what, ex),
        });
        _ownsLoop = true;
        _loopWork = new LoopWork(this);
        _loop.AddPassFinisher(_loopWork);
    }

    /// <summary>
    /// Creates a runtime on an existing <paramref name="loop"/>, which its owner runs and disposes (it may serve other
    /// components too). <see cref="Dispose"/> then leaves the loop running. Handler failures go to the loop's own
    /// <see cref="EventLoopOptions.HandlerFailed"/>.
    /// </summary>
    /// <exception cref="ArgumentException"><see cref="TapRuntimeOptions.Waiter"/> is set: the loop already has its waiter.</exception>
    public TapRuntime(EventLoop loop, TapRuntimeOptions? options = null)
    {
        _loop = loop ?? throw new ArgumentNullException(nameof(loop));
        Options = options ?? new TapRuntimeOptions();
        if (Options.Waiter != null)
            throw new ArgumentException("a runtime on a given loop takes no waiter (TapRuntimeOptions.Waiter); give it to the loop's EventLoopOptions", nameof(options));
        _loopWork = new LoopWork(this);
        _loop.AddPassFinisher(_loopWork);
    }

    /// <summary>
    /// The event loop the runtime runs on: hooks, control events, session processing and every handler attached to it
    /// run on its thread. Attach descriptors or post work to it directly, or through the delegating members here.
    /// </summary>
    public EventLoop Loop => _loop;

    /// <summary>True when the loop can watch file descriptors (<see cref="AttachPoll(int, PollEvents, Action{PollEvents})"/>). Any thread.</summary>
    public bool SupportsDescriptors => _loop.SupportsDescriptors;

    /// <summary>True on the thread currently running the loop. Any thread.</summary>
    public bool IsLoopThread => _loop.IsLoopThread;

    /// <summary>The settings.</summary>
    public TapRuntimeOptions Options { get; }

    /// <summary>
    /// Where passed requests go (interposition placement). Null: the tap terminates, and a request that
    /// passes every hook is answered EOPNOTSUPP.
    /// </summary>
    public ITapBackend? Backend { get; set; }

    /// <summary>Sessions currently attached. Loop thread.</summary>
    public IReadOnlyList<TapSession> Sessions => _sessions;

    /// <summary>Requests inside the runtime (in hooks, stolen, or at the backend). Any thread (the loop thread alone changes it).</summary>
    public long InFlight => Volatile.Read(ref _inFlight);

    /// <summary>Names of the request hooks in order.</summary>
    public IReadOnlyList<string> RequestHookNames => _requestHooks.ConvertAll(h => h.Name);

    /// <summary>Names of the response hooks in order.</summary>
    public IReadOnlyList<string> ResponseHookNames => _responseHooks.ConvertAll(h => h.Name);

    /// <summary>
    /// True when no hook but the one serving a request can see its data: exactly one request hook, no response hook and
    /// no backend (the condition for <see cref="TapRequest.FileReferenceAllowed"/>). Loop thread.
    /// </summary>
    internal bool DataSeenOnlyByTerminator => _requestChain.Length == 1 && _responseChain.Length == 0 && Backend == null;

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
        try
        {
            if (Options.Diagnostics is { } sink) sink(new TapDiagnostic(level, session, message, exception));
            else if (Options.Logger is { } logger) Hosting.TapLogging.Log(logger, new TapDiagnostic(level, session, message, exception));
        }
        catch (Exception) { /* a broken log sink must not break the loop */ }
    }

    [Conditional("DEBUG")]
    private void AssertLoopThread()
    {
        Debug.Assert(_loop.MayTouchLoopState, "session and hook state belongs to the loop thread");
    }

    /// <summary>
    /// On its own loop: stops the loop, detaches every registration and releases the waiter. On a given loop: leaves
    /// the loop running (its owner disposes it) and only stops taking part in its passes. Any thread; idempotent.
    /// </summary>
    public void Dispose()
    {
        if (_ownsLoop) _loop.Dispose();
        else _loop.RemovePassFinisher(_loopWork);
    }
}
