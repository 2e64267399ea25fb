using System.Net.Sockets;
using BlkTap.Loop;

namespace BlkTap.Emulator.Internal;

/// <summary>
/// The shmring event channel: the accepted <c>DIR/evtchn</c> connection after the handshake. Every
/// byte either side writes is one notification; bytes that arrive together coalesce into one wakeup,
/// like Xen's pending bit.
/// </summary>
/// <remarks>
/// Threading: <see cref="Start"/>, the poll handler and <see cref="Dispose"/> run on the tap's loop
/// thread (the runtime's <see cref="IEventLoop"/>, which watches the socket). <see cref="Notify"/> may run on any thread and never blocks: the socket is non-blocking,
/// and a full send buffer already holds notifications the frontend has not read, so the byte is
/// dropped (it would coalesce anyway). <see cref="SetHandler"/> is safe from any thread.
/// </remarks>
internal sealed class ShmringEventChannel(Socket socket, IEventLoop loop, Action<string?> onHangup) : IEventChannel
{
    private static readonly byte[] One = [1];
    private readonly byte[] _drain = new byte[256];
    private volatile Action? _handler;
    private PollRegistration? _poll;
    private int _disposed;

    /// <inheritdoc/>
    public uint LocalPort => 0;

    /// <summary>Loop thread: switches the socket to non-blocking and joins the loop's poll set.</summary>
    public void Start()
    {
        socket.Blocking = false;
        _poll = loop.Attach(socket, OnReadable);
    }

    /// <inheritdoc/>
    public void Notify()
    {
        if (Volatile.Read(ref _disposed) != 0) return;
        try { socket.Send(One, SocketFlags.None, out _); }
        catch (ObjectDisposedException) { }
        // Errors (EPIPE, ECONNRESET, EAGAIN) need no action here: a dead peer shows up as EOF on the read side.
    }

    /// <inheritdoc/>
    public void SetHandler(Action? onEvent) => _handler = onEvent;

    private void OnReadable(PollEvents events)
    {
        if (Volatile.Read(ref _disposed) != 0) return;
        bool any = false;
        string? hangup = null;
        while (true)
        {
            int n;
            SocketError error;
            try { n = socket.Receive(_drain, 0, _drain.Length, SocketFlags.None, out error); }
            catch (ObjectDisposedException) { return; }
            if (error == SocketError.WouldBlock) break;
            // NOTE: a peer that exits with our notification bytes unread makes its kernel send RST
            // (ECONNRESET here) instead of FIN: that is a hangup too, not a failure.
            if (error is SocketError.ConnectionReset or SocketError.Shutdown) { hangup = ""; break; }
            if (error != SocketError.Success) { hangup = $"event channel failed: {error}"; break; }
            if (n == 0) { hangup = ""; break; }
            any = true;
        }
        if (any) _handler?.Invoke();
        if (hangup != null)
        {
            _poll?.Dispose();
            onHangup(hangup.Length == 0 ? null : hangup);
        }
    }

    /// <summary>Leaves the poll set and closes the connection (the frontend sees EOF).</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        _handler = null;
        _poll?.Dispose();
        try { socket.Shutdown(SocketShutdown.Both); } catch (SocketException) { } catch (ObjectDisposedException) { }
        socket.Dispose();
    }
}
