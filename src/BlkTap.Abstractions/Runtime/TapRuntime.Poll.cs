using System.Net.Sockets;
using BlkTap.Loop;

namespace BlkTap;

public sealed partial class TapRuntime
{
    // Descriptors, sockets and wait handles on the runtime's loop (blktap_attach_poll): the members callers have always
    // used, delegated to the EventLoop, which holds the registrations.

    /// <summary>
    /// Attaches a file descriptor to the loop (see <see cref="EventLoop.Attach(int, PollEvents, Action{PollEvents})"/>):
    /// <paramref name="handler"/> runs on the loop thread whenever the descriptor is ready for <paramref name="interest"/>
    /// (level-triggered), or has an error or hang-up (reported as Readable|Writable). Requires
    /// <see cref="SupportsDescriptors"/>. The caller owns the descriptor and must detach before closing it. Safe from any thread.
    /// </summary>
    public PollRegistration AttachPoll(int fd, PollEvents interest, Action<PollEvents> handler)
    {
        try { return _loop.Attach(fd, interest, handler); }
        catch (NotSupportedException) when (!_loop.SupportsDescriptors)
        {
            throw new NotSupportedException("this runtime's loop cannot watch file descriptors (TapRuntimeOptions.Waiter)");
        }
    }

    /// <summary>
    /// Attaches a socket to the loop (blktap_attach_poll; see <see cref="EventLoop.Attach(Socket, Action{PollEvents})"/>):
    /// <paramref name="handler"/> runs on the loop thread each time the socket becomes readable (data, or the peer
    /// closed), and reads what is available without blocking. Detach before disposing the socket. Safe from any thread.
    /// </summary>
    public PollRegistration AttachPoll(Socket socket, Action<PollEvents> handler) => _loop.Attach(socket, handler);

    /// <summary>
    /// Attaches a wait handle to the loop (see <see cref="EventLoop.Attach(WaitHandle, Action{PollEvents})"/>):
    /// <paramref name="handler"/> runs on the loop thread each time it is signalled. Safe from any thread.
    /// </summary>
    public PollRegistration AttachPoll(WaitHandle handle, Action<PollEvents> handler) => _loop.Attach(handle, handler);

    /// <summary>Detaches a registration (blktap_detach_poll). Safe from any thread; idempotent.</summary>
    public void DetachPoll(PollRegistration registration) => _loop.Detach(registration);
}
