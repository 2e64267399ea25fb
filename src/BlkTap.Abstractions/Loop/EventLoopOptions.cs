namespace BlkTap.Loop;

/// <summary>Settings of an <see cref="EventLoop"/>. Read once, by its constructor.</summary>
public sealed class EventLoopOptions
{
    /// <summary>A name for logs and the loop thread's name (<c>blktap-loop:NAME</c>).</summary>
    public string Name { get; set; } = "loop";

    /// <summary>
    /// How the loop sleeps between passes (null: an <see cref="EventLoopWaiter"/>, which watches no descriptors). Give an
    /// epoll waiter (BlkTap.Linux's <c>EpollLoopWaiter</c>) to let the loop watch descriptors itself. The loop disposes it.
    /// </summary>
    public ILoopWaiter? Waiter { get; set; }

    /// <summary>
    /// Called on the loop thread with a one-line description and the exception when a handler (posted work, a ready
    /// handler, a pass finisher, an end-of-pass handler) throws; the loop then carries on. Must not block. An exception
    /// it throws is dropped. Null: such exceptions are dropped.
    /// </summary>
    public Action<string, Exception>? HandlerFailed { get; set; }
}
