namespace BlkTap;

/// <summary>One descriptor a <see cref="ILoopWaiter"/> found ready: the token it was watched with, and what is ready.</summary>
/// <param name="Token">The value passed to <see cref="ILoopWaiter.Watch"/>.</param>
/// <param name="Events">Readable and/or Writable; an error or hang-up is reported as both.</param>
public readonly record struct PollReady(long Token, PollEvents Events);

/// <summary>
/// How an event loop (<see cref="Loop.EventLoop"/>, the loop of a <see cref="TapRuntime"/>) sleeps between passes, and (optionally) the file descriptors it watches
/// while it sleeps, so that a socket served on the loop costs no thread hand-off: the loop thread itself wakes when
/// the socket is ready. The default (<see cref="EventLoopWaiter"/>) is an event and watches no descriptors; the Linux
/// epoll waiter in BlkTap.Linux (<c>EpollLoopWaiter</c>) watches descriptors.
/// </summary>
/// <remarks>
/// Threading: <see cref="Wake"/> is called from any thread. <see cref="Wait"/> is called only by the loop thread.
/// <see cref="Watch"/>, <see cref="Modify"/> and <see cref="Unwatch"/> must be safe from any thread (the loop
/// calls them from the thread that attaches or re-arms a registration).
/// A <see cref="Wake"/> that arrives while nobody waits is latched: the next <see cref="Wait"/> returns at once.
/// </remarks>
public interface ILoopWaiter : IDisposable
{
    /// <summary>True when <see cref="Watch"/> is supported (descriptor polling on the loop).</summary>
    bool SupportsDescriptors { get; }

    /// <summary>Makes the current or next <see cref="Wait"/> return. Any thread; cheap to call repeatedly.</summary>
    void Wake();

    /// <summary>
    /// Loop thread: waits up to <paramref name="timeoutMs"/> (-1: until woken or a descriptor is ready; 0: only look)
    /// and writes the ready descriptors into <paramref name="ready"/>. Returns how many were written (0 when woken
    /// or timed out). Consumes a latched wake.
    /// </summary>
    int Wait(int timeoutMs, Span<PollReady> ready);

    /// <summary>Starts watching <paramref name="fd"/> for <paramref name="interest"/> (level-triggered); reports carry <paramref name="token"/>.</summary>
    void Watch(int fd, PollEvents interest, long token);

    /// <summary>Changes what <paramref name="fd"/> is watched for (<see cref="PollEvents.None"/>: only errors and hang-ups).</summary>
    void Modify(int fd, PollEvents interest, long token);

    /// <summary>Stops watching <paramref name="fd"/>. Call before the descriptor is closed.</summary>
    void Unwatch(int fd);
}

/// <summary>
/// The default <see cref="ILoopWaiter"/>: a <see cref="ManualResetEventSlim"/> (spins briefly, then blocks); watches
/// no descriptors. Works on every platform and under every scheduler.
/// </summary>
public sealed class EventLoopWaiter : ILoopWaiter
{
    private readonly ManualResetEventSlim _event = new(false);

    /// <inheritdoc/>
    public bool SupportsDescriptors => false;

    /// <inheritdoc/>
    public void Wake() => _event.Set();

    /// <inheritdoc/>
    public int Wait(int timeoutMs, Span<PollReady> ready)
    {
        if (timeoutMs != 0) _event.Wait(timeoutMs);
        _event.Reset();
        return 0;
    }

    /// <inheritdoc/>
    public void Watch(int fd, PollEvents interest, long token) =>
        throw new NotSupportedException("this loop waits on an event and cannot watch file descriptors; use an epoll waiter (BlkTap.Linux.EpollLoopWaiter)");

    /// <inheritdoc/>
    public void Modify(int fd, PollEvents interest, long token) => Watch(fd, interest, token);

    /// <inheritdoc/>
    public void Unwatch(int fd) { }

    /// <inheritdoc/>
    public void Dispose() => _event.Dispose();
}
