using System.Collections.Concurrent;
using System.Diagnostics;

namespace BlkTap.Loop;

/// <summary>
/// The event loop (the 2005 blktaplib's <c>blktap_listen</c> loop, without the hooks): one thread that sleeps in an
/// <see cref="ILoopWaiter"/> and, pass after pass, runs the handlers of the descriptors the waiter found ready, the work
/// posted from any thread (in posting order), the pass finishers, and the end-of-pass handlers of the pass.
/// <see cref="TapRuntime"/> (the hook engine) runs on one; the NBD server serves its connections on one.
/// </summary>
/// <remarks>
/// <para>Threading: <see cref="Run"/>'s caller (or <see cref="RunAsync"/>'s thread, or the caller of
/// <see cref="RunOnce"/> when an external scheduler drives the loop) is the loop thread and owns everything handlers
/// touch. <see cref="Post(Action)"/>, <see cref="Post(ILoopWorkHandler, object?, int)"/>, the <c>Attach</c> overloads,
/// <see cref="Detach"/>, <see cref="Stop"/> and <see cref="Dispose"/> are safe from any thread. Each member says its rule.</para>
/// <para>Errors: a handler that throws is reported to <see cref="EventLoopOptions.HandlerFailed"/> and the loop carries on.</para>
/// <para>Allocation: a pass allocates nothing (posting with <see cref="Post(ILoopWorkHandler, object?, int)"/>, waking,
/// dispatching ready descriptors), so a request served on the loop costs no garbage.</para>
/// </remarks>
public sealed partial class EventLoop : IEventLoop, IDisposable
{
    // This file: state, properties, error reports and disposal. EventLoop.Pass.cs: the work queue, one pass, run and
    // stop. EventLoop.Registrations.cs: descriptors, sockets and wait handles.

    private readonly ConcurrentQueue<WorkItem> _work = new();
    private readonly ILoopWaiter _waiter;
    private readonly Action<string, Exception>? _handlerFailed;
    private readonly PollReady[] _ready = new PollReady[64];
    private readonly List<IEndOfPassHandler> _passEnd = new();
    private IEndOfPassHandler[] _finishers = [];
    private readonly Lock _finishersLock = new();
    private int _sleeping;
    private long _passTimestamp = Stopwatch.GetTimestamp();
    private Action? _externalWake;
    private volatile bool _stopping;
    private int _loopThreadId;
    private int _disposed, _running, _waiterReleased;

    /// <summary>Creates a loop; it runs once <see cref="Run"/>, <see cref="RunAsync"/> or an external driver starts it.</summary>
    public EventLoop(EventLoopOptions? options = null)
    {
        options ??= new EventLoopOptions();
        Name = options.Name;
        _waiter = options.Waiter ?? new EventLoopWaiter();
        _handlerFailed = options.HandlerFailed;
    }

    /// <summary>The name given in <see cref="EventLoopOptions.Name"/>.</summary>
    public string Name { get; }

    /// <inheritdoc/>
    public bool SupportsDescriptors => _waiter.SupportsDescriptors && _externalWake == null;

    /// <summary>
    /// True when an external scheduler drives the loop (<see cref="UseExternalDriver"/>, the emulator's deterministic
    /// mode): work that would go to another thread runs inline instead, so a run stays reproducible. Any thread.
    /// </summary>
    public bool IsExternallyDriven => _externalWake != null;

    /// <inheritdoc/>
    public bool IsLoopThread => Volatile.Read(ref _loopThreadId) == Environment.CurrentManagedThreadId;

    /// <summary>True when posted work waits for the loop. Any thread (a snapshot).</summary>
    public bool HasPendingWork => !_work.IsEmpty;

    /// <summary>
    /// Loop thread: the <see cref="Stopwatch"/> timestamp read when the current pass began (or the loop woke), one clock
    /// read for all the work of a pass (requests that arrived together share it).
    /// </summary>
    public long PassTimestamp => _passTimestamp;

    /// <summary>The waiter (for registrations changing their watch).</summary>
    internal ILoopWaiter Waiter => _waiter;

    /// <summary>
    /// True where loop-owned state may be touched: on the loop thread, before any pass ran, or under an external driver
    /// (whose scheduler serialises the callers). For debug assertions.
    /// </summary>
    internal bool MayTouchLoopState
    {
        get
        {
            int owner = Volatile.Read(ref _loopThreadId);
            return owner == 0 || owner == Environment.CurrentManagedThreadId || _externalWake != null;
        }
    }

    /// <summary>
    /// Adds a pass finisher: <paramref name="finisher"/> runs at the end of every pass, after the posted work and ready
    /// handlers and before the end-of-pass handlers of <see cref="RunAtEndOfPass"/> (the hook engine publishes the pass's
    /// responses there, so that end-of-pass handlers see them delivered). Any thread; normally before the loop runs.
    /// </summary>
    public void AddPassFinisher(IEndOfPassHandler finisher)
    {
        ArgumentNullException.ThrowIfNull(finisher);
        lock (_finishersLock) Volatile.Write(ref _finishers, [.. _finishers, finisher]);
    }

    /// <summary>Removes a pass finisher added with <see cref="AddPassFinisher"/>. Any thread; a finisher not there is ignored.</summary>
    public void RemovePassFinisher(IEndOfPassHandler finisher)
    {
        lock (_finishersLock) Volatile.Write(ref _finishers, Array.FindAll(_finishers, f => !ReferenceEquals(f, finisher)));
    }

    /// <summary>Loop thread: reports a handler's exception to <see cref="EventLoopOptions.HandlerFailed"/>.</summary>
    internal void ReportHandlerFailure(string what, Exception exception)
    {
        try { _handlerFailed?.Invoke(what, exception); }
        catch (Exception) { /* a broken log sink must not break the loop */ }
    }

    /// <summary>
    /// Stops the loop, detaches every registration and releases the waiter (at once, or when a running loop leaves its
    /// wait). Any thread; idempotent.
    /// </summary>
    public void Dispose()
    {
        Stop();
        DetachAll();
        // A running loop may be inside Wait: it releases the waiter when it returns.
        if (Interlocked.Exchange(ref _disposed, 1) == 0 && Volatile.Read(ref _running) == 0) ReleaseWaiter();
    }

    private void ReleaseWaiter()
    {
        if (Interlocked.Exchange(ref _waiterReleased, 1) == 0) _waiter.Dispose();
    }

    private enum WorkKind : byte { Action, Handler, Poll }

    /// <summary>One queued piece of work: an action, a handler with its state and code, or a registration's hand-off.</summary>
    private readonly record struct WorkItem(WorkKind Kind, object Target, object? State = null, int Code = 0);
}
