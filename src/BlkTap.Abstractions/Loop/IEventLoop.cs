using System.Net.Sockets;

namespace BlkTap.Loop;

/// <summary>
/// An event loop: one thread (the loop thread) that runs, pass after pass, the handlers of the descriptors, sockets and
/// wait handles attached to it, the work posted to it from any thread, and the end-of-pass handlers of each pass. This
/// is the contract a component served on a loop is written against (the NBD server's connections, the shmring event
/// channel, the hook engine <see cref="TapRuntime"/>); <see cref="EventLoop"/> implements it.
/// </summary>
/// <remarks>
/// <para>Threading: everything a handler touches belongs to the loop thread; handlers never run concurrently with each
/// other. Members say which thread may call them: "any thread", or "loop thread" (from inside a handler, or while
/// no loop runs yet).</para>
/// <para>Errors: an exception thrown by a handler is caught, reported (<see cref="EventLoopOptions.HandlerFailed"/>)
/// and the loop carries on with the next handler.</para>
/// </remarks>
public interface IEventLoop
{
    /// <summary>True on the thread currently running the loop. Any thread.</summary>
    bool IsLoopThread { get; }

    /// <summary>
    /// True when the loop can watch file descriptors itself (<see cref="Attach(int, PollEvents, Action{PollEvents})"/>):
    /// its waiter supports it and no external scheduler drives the loop. Any thread.
    /// </summary>
    bool SupportsDescriptors { get; }

    /// <summary>
    /// Attaches a file descriptor: <paramref name="handler"/> runs on the loop thread whenever the descriptor is ready
    /// for <paramref name="interest"/> (level-triggered: every pass while it stays ready), or has an error or hang-up
    /// (reported as Readable|Writable). No thread besides the loop's is involved. The caller owns the descriptor and
    /// detaches before closing it. Any thread.
    /// </summary>
    /// <exception cref="NotSupportedException">The loop cannot watch descriptors (<see cref="SupportsDescriptors"/>).</exception>
    PollRegistration Attach(int fd, PollEvents interest, Action<PollEvents> handler);

    /// <summary>
    /// Attaches a socket: <paramref name="handler"/> runs on the loop thread each time the socket is readable (data, or
    /// the peer closed); it reads what is there without blocking. On a loop that watches descriptors the loop thread
    /// polls the socket itself; otherwise a zero-byte receive on .NET's socket engine is re-armed after each call.
    /// Detach before disposing the socket. Any thread.
    /// </summary>
    PollRegistration Attach(Socket socket, Action<PollEvents> handler);

    /// <summary>
    /// Attaches a wait handle: <paramref name="handler"/> runs on the loop thread (with <see cref="PollEvents.Signalled"/>)
    /// each time the handle is signalled. A thread-pool wait watches the handle. Any thread.
    /// </summary>
    PollRegistration Attach(WaitHandle handle, Action<PollEvents> handler);

    /// <summary>
    /// Changes what a descriptor registration waits for (for example Writable only while output is queued, None while a
    /// reader is throttled); errors and hang-ups are always reported. The thread that owns the registration (normally
    /// the loop thread), never concurrently with its detach.
    /// </summary>
    /// <exception cref="InvalidOperationException">Not a descriptor registration.</exception>
    void ChangeInterest(PollRegistration registration, PollEvents interest);

    /// <summary>
    /// Detaches a registration: its handler runs no more once this returns on the loop thread (from another thread, a
    /// handler already running may finish). Any thread; idempotent; also from inside the registration's own handler.
    /// </summary>
    void Detach(PollRegistration registration);

    /// <summary>Runs <paramref name="action"/> on the loop thread, in posting order with all other posted work. Any thread.</summary>
    void Post(Action action);

    /// <summary>
    /// Runs <paramref name="handler"/>.<see cref="ILoopWorkHandler.RunOnLoop"/>(<paramref name="state"/>, <paramref name="code"/>)
    /// on the loop thread, in posting order with all other posted work, without allocating (the hot path of a
    /// transport or of the hook engine). Any thread.
    /// </summary>
    void Post(ILoopWorkHandler handler, object? state, int code);

    /// <summary>
    /// Loop thread: runs <paramref name="handler"/> once at the end of the current pass, after the pass's posted work,
    /// ready handlers and pass finishers (to gather per-pass work, such as one socket write for many replies). A
    /// handler scheduled by an end-of-pass handler runs in the next pass. The caller avoids scheduling the same handler
    /// twice in one pass.
    /// </summary>
    void RunAtEndOfPass(IEndOfPassHandler handler);

    /// <summary>Asks the loop to return from its run after the current pass. Any thread.</summary>
    void Stop();
}
