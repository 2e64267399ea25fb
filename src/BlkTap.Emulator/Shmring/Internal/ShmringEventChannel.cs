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
/// <see cref="HoldDeliveries"/> (any thread; the work is done on the loop thread) leaves the poll set for the delay, as a
/// masked Xen port stops upcalls: a frontend that notifies for nothing (XSA-332) then fills its own socket buffer
/// instead of waking the loop for each byte, and the bytes that came meanwhile make one delivery when the delay ends
/// (a hang-up meanwhile is seen then too, at most one delay late).
/// </remarks>
internal sealed class ShmringEventChannel : IEventChannel
{
    private static readonly byte[] One = [1];
    private readonly byte[] _drain = new byte[256];
    private readonly Socket _socket;
    private readonly IEventLoop _loop;
    private readonly Action<string?> _onHangup;
    private readonly TimeProvider _time;
    private readonly Action _endHold;
    private volatile Action? _handler;
    private PollRegistration? _poll; // loop thread
    private ITimer? _holdTimer;      // loop thread (created and changed there; disposed by Dispose)
    private bool _hungUp;            // loop thread: the hang-up was reported (once)
    private int _disposed;

    /// <param name="socket">The accepted event-channel connection.</param>
    /// <param name="loop">The tap's loop, which watches the socket.</param>
    /// <param name="onHangup">Loop thread, once: the frontend hung up (null) or the socket failed (why).</param>
    /// <param name="time">The clock of <see cref="HoldDeliveries"/>'s delays (the runtime's).</param>
    public ShmringEventChannel(Socket socket, IEventLoop loop, Action<string?> onHangup, TimeProvider? time = null)
    {
        _socket = socket;
        _loop = loop;
        _onHangup = onHangup;
        _time = time ?? TimeProvider.System;
        _endHold = EndHold;
    }

    /// <summary>Times the channel left the poll set for a delay (<see cref="HoldDeliveries"/>). Any thread (diagnostics).</summary>
    public long Holds => Volatile.Read(ref _holds);
    private long _holds;

    /// <inheritdoc/>
    public uint LocalPort => 0;

    /// <summary>Loop thread: switches the socket to non-blocking and joins the loop's poll set.</summary>
    public void Start()
    {
        _socket.Blocking = false;
        _poll = _loop.Attach(_socket, OnReadable);
    }

    /// <inheritdoc/>
    public void Notify()
    {
        if (Volatile.Read(ref _disposed) != 0) return;
        try { _socket.Send(One, SocketFlags.None, out _); }
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
            try { n = _socket.Receive(_drain, 0, _drain.Length, SocketFlags.None, out error); }
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
        if (hangup != null && !_hungUp)
        {
            _hungUp = true;
            _poll?.Dispose();
            _poll = null;
            _onHangup(hangup.Length == 0 ? null : hangup);
        }
    }

    /// <inheritdoc/>
    public void HoldDeliveries(TimeSpan delay)
    {
        if (delay <= TimeSpan.Zero || Volatile.Read(ref _disposed) != 0) return;
        if (_loop.IsLoopThread) Hold(delay);
        else _loop.Post(() => Hold(delay)); // not the backoff's path (it runs on the loop): no need to spare the closure
    }

    // Loop thread: out of the poll set until the timer ends the hold (a later hold moves the end).
    private void Hold(TimeSpan delay)
    {
        if (Volatile.Read(ref _disposed) != 0 || _hungUp) return;
        _poll?.Dispose();
        _poll = null;
        Interlocked.Increment(ref _holds);
        _holdTimer ??= _time.CreateTimer(static s => ((ShmringEventChannel)s!).HoldEnded(), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        _holdTimer.Change(delay, Timeout.InfiniteTimeSpan);
    }

    // Timer thread: the loop re-attaches (the channel's state is the loop's).
    private void HoldEnded()
    {
        if (Volatile.Read(ref _disposed) != 0) return;
        try { _loop.Post(_endHold); }
        catch (ObjectDisposedException) { /* the loop is gone: so is the session */ }
    }

    // Loop thread: back in the poll set; bytes that came meanwhile make the socket readable, so one delivery follows.
    // Out of the poll set (no registration) only while held or after the hang-up: a stale end finds a registration.
    private void EndHold()
    {
        if (Volatile.Read(ref _disposed) != 0 || _hungUp || _poll != null) return;
        _poll = _loop.Attach(_socket, OnReadable);
    }

    /// <summary>Leaves the poll set and closes the connection (the frontend sees EOF).</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        _handler = null;
        _holdTimer?.Dispose();
        _poll?.Dispose();
        try { _socket.Shutdown(SocketShutdown.Both); } catch (SocketException) { } catch (ObjectDisposedException) { }
        _socket.Dispose();
    }
}
