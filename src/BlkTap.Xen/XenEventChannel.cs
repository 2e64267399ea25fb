using BlkTap.Linux.Internal;
using BlkTap.Linux.Interop;
using BlkTap.Xen.Internal;
using BlkTap.Xen.Interop;

namespace BlkTap.Xen;

/// <summary>
/// An interdomain event channel through libxenevtchn (<c>/dev/xen/evtchn</c>), bound to a peer's port
/// (<see cref="BindInterdomain"/>, a backend) or offered to a peer domain (<see cref="AllocateUnbound"/>, a
/// frontend). A dedicated poll thread waits for the port, reads it with xenevtchn_pending, unmasks it, then runs
/// the handler.
/// </summary>
/// <remarks>
/// Threading: <see cref="Notify"/>, <see cref="SetHandler"/> and <see cref="Dispose"/> may be called from any
/// thread. The handler runs on the channel's poll thread, one call at a time; it must not block. An exception
/// thrown by the handler is caught (it never kills the poll thread) and kept in <see cref="LastHandlerException"/>.
/// The port is unmasked before the handler runs, so a notification that arrives while it runs is delivered again.
/// </remarks>
public sealed class XenEventChannel : IEventChannel
{
    private readonly SafeEvtchnHandle _handle;
    private readonly WakePipe _wake;
    private readonly Thread _thread;
    private Action? _handler;
    private long _holdUntil; // Environment.TickCount64 before which a read port stays masked
    private volatile bool _stopping;
    private int _disposed;

    private XenEventChannel(SafeEvtchnHandle handle, uint localPort, ushort remoteDomain, uint remotePort)
    {
        _handle = handle;
        LocalPort = localPort;
        RemoteDomain = remoteDomain;
        RemotePort = remotePort;
        _wake = new WakePipe();
        _thread = new Thread(PollLoop) { IsBackground = true, Name = $"xen-evtchn-{localPort}" };
        _thread.Start();
    }

    /// <summary>
    /// Binds a local port to <paramref name="remotePort"/> of domain <paramref name="remoteDomain"/> (the port the
    /// frontend allocated and published in xenstore as <c>event-channel</c>).
    /// </summary>
    /// <exception cref="XenNotAvailableException">/dev/xen/evtchn or libxenevtchn.so.1 is missing.</exception>
    /// <exception cref="XenInteropException">xenevtchn_open or xenevtchn_bind_interdomain failed.</exception>
    public static XenEventChannel BindInterdomain(ushort remoteDomain, uint remotePort)
    {
        var handle = OpenHandle();
        int port = EvtchnLib.BindInterdomain(handle, remoteDomain, remotePort);
        if (port < 0)
        {
            var ex = XenErrno.Exception("xenevtchn_bind_interdomain", $"domain {remoteDomain} port {remotePort}");
            handle.Dispose();
            throw ex;
        }
        return new XenEventChannel(handle, (uint)port, remoteDomain, remotePort);
    }

    /// <summary>
    /// Allocates a new local port that <paramref name="remoteDomain"/> may bind to (EVTCHNOP_alloc_unbound): the
    /// frontend's side, whose <see cref="LocalPort"/> it publishes in xenstore as <c>event-channel</c>. The
    /// backend's notifications are delivered (through the same poll thread as a bound channel) once it has bound;
    /// a <see cref="Notify"/> before that is accepted by Xen and lost.
    /// </summary>
    /// <remarks><see cref="RemotePort"/> is 0: Xen does not tell the allocating side which port the peer bound.</remarks>
    /// <exception cref="XenNotAvailableException">/dev/xen/evtchn or libxenevtchn.so.1 is missing.</exception>
    /// <exception cref="XenInteropException">xenevtchn_open or xenevtchn_bind_unbound_port failed (e.g. ESRCH:
    /// no such domain).</exception>
    public static XenEventChannel AllocateUnbound(ushort remoteDomain)
    {
        var handle = OpenHandle();
        int port = EvtchnLib.BindUnboundPort(handle, remoteDomain);
        if (port < 0)
        {
            var ex = XenErrno.Exception("xenevtchn_bind_unbound_port", $"domain {remoteDomain}");
            handle.Dispose();
            throw ex;
        }
        return new XenEventChannel(handle, (uint)port, remoteDomain, remotePort: 0);
    }

    private static SafeEvtchnHandle OpenHandle()
    {
        XenPlatform.RequireDevice(EvtchnIoctls.DevicePath, "xen-evtchn");
        XenPlatform.RequireLibrary(XenLibraries.XenEvtchn, "libxenevtchn1");
        var handle = EvtchnLib.Open(0, 0);
        if (handle.IsInvalid)
        {
            var ex = XenErrno.Exception("xenevtchn_open");
            handle.Dispose();
            throw ex;
        }
        return handle;
    }

    /// <inheritdoc />
    public uint LocalPort { get; }

    /// <summary>The peer domain.</summary>
    public ushort RemoteDomain { get; }

    /// <summary>The peer's port; 0 (unknown) for a channel made by <see cref="AllocateUnbound"/>.</summary>
    public uint RemotePort { get; }

    /// <summary>The last exception the handler threw, or null.</summary>
    public Exception? LastHandlerException { get; private set; }

    /// <summary>The error that stopped the poll thread early (a failed poll or xenevtchn_pending), or null.</summary>
    public XenInteropException? PollFailure { get; private set; }

    /// <inheritdoc />
    /// <exception cref="ObjectDisposedException">The channel was disposed.</exception>
    /// <exception cref="XenInteropException">xenevtchn_notify failed (the port was closed by Xen).</exception>
    public void Notify()
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        if (EvtchnLib.Notify(_handle, LocalPort) != 0)
            throw XenErrno.Exception("xenevtchn_notify", $"port {LocalPort}");
    }

    /// <inheritdoc />
    public void SetHandler(Action? onEvent) => Volatile.Write(ref _handler, onEvent);

    /// <inheritdoc />
    /// <remarks>
    /// The next port read from /dev/xen/evtchn stays masked until the delay ends, then is unmasked and its handler
    /// runs: meanwhile Xen only sets the port's pending bit for each notification (no upcall into dom0's kernel, no
    /// wake-up of the poll thread), and the unmask raises one event if any came. Millisecond resolution.
    /// </remarks>
    public void HoldDeliveries(TimeSpan delay)
    {
        if (delay <= TimeSpan.Zero) return;
        Volatile.Write(ref _holdUntil, Environment.TickCount64 + Math.Max(1, (long)Math.Ceiling(delay.TotalMilliseconds)));
    }

    /// <summary>Stops the poll thread, unbinds the port and closes the handle. Idempotent.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        _stopping = true;
        _wake.Signal();
        if (Thread.CurrentThread != _thread) _thread.Join();
        EvtchnLib.Unbind(_handle, LocalPort);
        _handle.Dispose();
        _wake.Dispose();
    }

    private void PollLoop()
    {
        bool addedHandle = false, addedWake = false;
        _handle.DangerousAddRef(ref addedHandle);
        _wake.ReadEnd.DangerousAddRef(ref addedWake);
        try
        {
            int evtFd = EvtchnLib.Fd(_handle);
            Span<PollFd> fds = stackalloc PollFd[2];
            while (!_stopping)
            {
                fds[0] = new PollFd { Fd = evtFd, Events = Libc.POLLIN };
                fds[1] = new PollFd { Fd = _wake.ReadEnd.Fd, Events = Libc.POLLIN };
                if (Libc.Poll(fds, -1) < 0) { PollFailure = XenErrno.Exception("poll", "/dev/xen/evtchn"); return; }
                if (fds[1].Revents != 0 || _stopping) return;
                if ((fds[0].Revents & Libc.POLLIN) != 0)
                {
                    int port = EvtchnLib.Pending(_handle);
                    if (port < 0)
                    {
                        if (Errno.Last == Errno.EAGAIN) continue;
                        PollFailure = XenErrno.Exception("xenevtchn_pending", $"port {LocalPort}");
                        return;
                    }
                    // NOTE: a port read from /dev/xen/evtchn stays masked until unmasked (xenevtchn.h
                    // "xenevtchn_pending ... xenevtchn_unmask"); a hold keeps it masked for a while (XSA-332: the
                    // guest's notifications meanwhile only set Xen's pending bit); unmask before the handler so none
                    // is lost.
                    if (!Hold(fds[1..])) return;
                    EvtchnLib.Unmask(_handle, (uint)port);
                    if ((uint)port == LocalPort) RunHandler();
                }
                else if ((fds[0].Revents & (Libc.POLLERR | Libc.POLLHUP | Libc.POLLNVAL)) != 0)
                {
                    PollFailure = new XenInteropException("poll", Errno.EIO, "/dev/xen/evtchn reported an error condition");
                    return;
                }
            }
        }
        finally
        {
            if (addedWake) _wake.ReadEnd.DangerousRelease();
            if (addedHandle) _handle.DangerousRelease();
        }
    }

    /// <summary>Waits out a hold on the wake pipe; false when the channel is being disposed.</summary>
    private bool Hold(Span<PollFd> wake)
    {
        long wait = Volatile.Read(ref _holdUntil) - Environment.TickCount64;
        if (wait <= 0) return !_stopping;
        while (wait > 0 && !_stopping)
        {
            wake[0] = new PollFd { Fd = _wake.ReadEnd.Fd, Events = Libc.POLLIN };
            int rc = Libc.Poll(wake, (int)Math.Min(wait, int.MaxValue));
            if (rc > 0 && wake[0].Revents != 0) return false;
            wait = Volatile.Read(ref _holdUntil) - Environment.TickCount64;
        }
        return !_stopping;
    }

    private void RunHandler()
    {
        try { Volatile.Read(ref _handler)?.Invoke(); }
        catch (Exception ex) { LastHandlerException = ex; }
    }
}
