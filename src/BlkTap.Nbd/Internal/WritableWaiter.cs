using System.Net.Sockets;

namespace BlkTap.Nbd.Internal;

/// <summary>
/// Waits, off the loop, for a socket to become writable and then posts a callback to the tap's loop.
/// <see cref="TapRuntime.AttachPoll(Socket, Action{PollEvents})"/> reports readability only, and this is the rare
/// case (the socket's send buffer is full), so a thread-pool item polling with a short timeout is enough.
/// Threading: <see cref="Arm"/> is called on the loop thread; the callback runs on the loop thread.
/// </summary>
internal sealed class WritableWaiter
{
    private readonly TapRuntime _runtime;
    private readonly Action<Socket> _onWritable;
    private int _armed;

    public WritableWaiter(TapRuntime runtime, Action<Socket> onWritable)
    {
        _runtime = runtime;
        _onWritable = onWritable;
    }

    /// <summary>Starts waiting for <paramref name="socket"/> unless a wait is already running.</summary>
    public void Arm(Socket socket)
    {
        if (Interlocked.Exchange(ref _armed, 1) == 1) return;
        ThreadPool.UnsafeQueueUserWorkItem(static state =>
        {
            var (self, s) = state;
            while (true)
            {
                try
                {
                    if (s.Poll(200_000, SelectMode.SelectWrite) || s.Poll(0, SelectMode.SelectError)) break;
                }
                catch (ObjectDisposedException) { break; }
                catch (SocketException) { break; }
            }
            self._runtime.Post(() =>
            {
                Volatile.Write(ref self._armed, 0);
                self._onWritable(s);
            });
        }, (this, socket), preferLocal: false);
    }
}
