namespace BlkTap.Loop;

/// <summary>
/// Work a component posts to an <see cref="IEventLoop"/> without allocating a delegate per item
/// (<see cref="IEventLoop.Post(ILoopWorkHandler, object?, int)"/>): the loop hands back the state and code it was posted with.
/// </summary>
public interface ILoopWorkHandler
{
    /// <summary>Loop thread: runs one posted item. An exception is caught and reported by the loop.</summary>
    /// <param name="state">The object posted with the item (a request, a session), or null.</param>
    /// <param name="code">The number posted with the item (what to do with <paramref name="state"/>).</param>
    void RunOnLoop(object? state, int code);
}
