using System.Runtime.InteropServices;
using BlkTap.Linux.Interop;

namespace BlkTap.Linux;

/// <summary>
/// A <see cref="ILoopWaiter"/> on Linux epoll: the loop thread sleeps in <c>epoll_wait</c> on the descriptors it
/// watches and on a non-blocking eventfd that <see cref="Wake"/> writes. Give one to
/// <see cref="TapRuntimeOptions.Waiter"/> so that <see cref="TapRuntime.AttachPoll(int, PollEvents, Action{PollEvents})"/>
/// serves sockets on the loop thread itself.
/// </summary>
/// <remarks>
/// <para>
/// Threading: <see cref="Wake"/>, <see cref="Watch"/>, <see cref="Modify"/>, <see cref="Unwatch"/> and
/// <see cref="Dispose"/> are safe from any thread, also while <see cref="Wait"/> blocks (the kernel serialises
/// epoll_ctl against epoll_wait, and both descriptors are SafeHandles, so no call can see its descriptor closed and
/// reused under it). <see cref="Wait"/> is for one thread at a time, the loop thread: it owns the event buffer.
/// A <see cref="Dispose"/> while <see cref="Wait"/> blocks on another thread wakes it; that Wait returns 0, and the
/// descriptors are closed once it has left the kernel. After <see cref="Dispose"/>, <see cref="Wake"/> and
/// <see cref="Unwatch"/> do nothing and the other members throw <see cref="ObjectDisposedException"/>.
/// </para>
/// <para>
/// Registrations are level-triggered: a descriptor is reported by every <see cref="Wait"/> while it stays ready.
/// Errors and hang-ups (EPOLLERR; EPOLLHUP, both directions shut) are always watched and are
/// reported as <see cref="PollEvents.Readable"/>|<see cref="PollEvents.Writable"/>. <see cref="Wait"/> allocates
/// nothing. Linux on x86_64 only (<see cref="IsSupported"/>).
/// </para>
/// </remarks>
public sealed class EpollLoopWaiter : ILoopWaiter
{
    /// <summary>The token the waiter's own eventfd is watched under: <see cref="Watch"/> and <see cref="Modify"/> refuse it.</summary>
    public const long WakeToken = long.MinValue;

    private const int InitialCapacity = 64;

    private readonly SafeFdHandle _epoll;
    private readonly SafeFdHandle _wake;

    // Written and read by Wait only (the loop thread): what epoll_wait fills. Pinned, so no pinning per call;
    // replaced only when a caller passes a longer span than ever before.
    private EpollEvent[] _events;

    // Set (0 -> 1) by the Wake that writes the eventfd; cleared by the Wait that drains it, after the read. While it
    // is 1 the eventfd is (or is about to be) readable, so further Wakes skip the write(2).
    private int _wakePending;

    private int _disposed;

    /// <summary>True where this waiter works: Linux on x86_64 (the <c>struct epoll_event</c> layout it models).</summary>
    public static bool IsSupported => OperatingSystem.IsLinux() && RuntimeInformation.ProcessArchitecture == Architecture.X64;

    /// <summary>Creates the epoll instance and the wake eventfd.</summary>
    /// <exception cref="PlatformNotSupportedException">Not Linux on x86_64 (<see cref="IsSupported"/>).</exception>
    /// <exception cref="LinuxInteropException">epoll_create1, eventfd or epoll_ctl failed (for example EMFILE).</exception>
    public EpollLoopWaiter()
    {
        if (!IsSupported)
            throw new PlatformNotSupportedException("EpollLoopWaiter needs Linux on x86_64 (the packed struct epoll_event layout it models)");
        _epoll = Libc.EpollCreate1();
        if (_epoll.IsInvalid) throw Errno.Exception("epoll_create1");
        _wake = Libc.Eventfd(Libc.EFD_NONBLOCK);
        if (_wake.IsInvalid || Libc.EpollCtl(_epoll, Libc.EPOLL_CTL_ADD, _wake.Fd, Libc.EPOLLIN, unchecked((ulong)WakeToken)) != 0)
        {
            var ex = Errno.Exception(_wake.IsInvalid ? "eventfd" : "epoll_ctl(EPOLL_CTL_ADD)", "the wake eventfd");
            _wake.Dispose();
            _epoll.Dispose();
            throw ex;
        }
        _events = GC.AllocateArray<EpollEvent>(InitialCapacity, pinned: true);
    }

    /// <inheritdoc/>
    public bool SupportsDescriptors => true;

    /// <summary>
    /// Makes the current or next <see cref="Wait"/> return: writes 1 to the eventfd, unless a wake is already pending.
    /// Any thread; after <see cref="Dispose"/> it does nothing.
    /// </summary>
    public void Wake()
    {
        if (Volatile.Read(ref _disposed) == 0 && Interlocked.Exchange(ref _wakePending, 1) == 0) Signal();
    }

    /// <inheritdoc/>
    public unsafe int Wait(int timeoutMs, Span<PollReady> ready)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        // NOTE: maxevents is ready.Length, not ready.Length + 1 (a spare entry for the eventfd). A level-triggered
        // entry that epoll_wait returns goes back to the tail of the kernel's ready list, while entries beyond
        // maxevents stay at its head (fs/eventpoll.c ep_send_events). Dropping a returned entry that did not fit
        // would therefore drop the same descriptor on every pass when ready.Length + 1 stay ready. Letting the eventfd
        // take a slot only delays one descriptor to the next Wait, in the kernel's round-robin order.
        int max = Math.Max(ready.Length, 1);
        var events = _events;
        if (events.Length < max) _events = events = GC.AllocateArray<EpollEvent>(max, pinned: true);
        // The eventfd stays open while this thread is in epoll_wait even if Dispose runs meanwhile: closing it would
        // take it out of the epoll set before the woken epoll_wait looked at it, and that epoll_wait would sleep on.
        bool wakeReferenced = false;
        _wake.DangerousAddRef(ref wakeReferenced);
        try
        {
            int n;
            fixed (EpollEvent* p = events) n = Libc.EpollWait(_epoll, p, max, timeoutMs);
            if (n < 0) throw Errno.Exception("epoll_wait");
            int count = 0;
            for (int i = 0; i < n; i++)
            {
                ulong data = events[i].Data;
                if (data == unchecked((ulong)WakeToken)) DrainWake();
                else if (count < ready.Length) ready[count++] = new PollReady(unchecked((long)data), ToPollEvents(events[i].Events));
            }
            return count;
        }
        finally
        {
            if (wakeReferenced) _wake.DangerousRelease();
        }
    }

    /// <inheritdoc/>
    /// <exception cref="LinuxInteropException">epoll_ctl failed: EEXIST (already watched), EBADF, EPERM (a regular file), ...</exception>
    public void Watch(int fd, PollEvents interest, long token) => Control(Libc.EPOLL_CTL_ADD, "epoll_ctl(EPOLL_CTL_ADD)", fd, interest, token);

    /// <inheritdoc/>
    /// <exception cref="LinuxInteropException">epoll_ctl failed: ENOENT (not watched), EBADF, ...</exception>
    public void Modify(int fd, PollEvents interest, long token) => Control(Libc.EPOLL_CTL_MOD, "epoll_ctl(EPOLL_CTL_MOD)", fd, interest, token);

    /// <summary>
    /// Stops watching <paramref name="fd"/>. A descriptor that is not watched (ENOENT) or already closed (EBADF) is
    /// ignored, as is a call after <see cref="Dispose"/>. Any thread.
    /// </summary>
    /// <exception cref="LinuxInteropException">epoll_ctl failed otherwise.</exception>
    public void Unwatch(int fd)
    {
        // NOTE: epoll(7) Q6: a registration belongs to the open file description; closing the descriptor drops it only
        // when no duplicate (dup, fork) keeps the file open. Hence the interface's "Unwatch before close".
        if (Volatile.Read(ref _disposed) != 0) return;
        int rc;
        try { rc = Libc.EpollCtl(_epoll, Libc.EPOLL_CTL_DEL, fd, 0, 0); }
        catch (ObjectDisposedException) { return; } // disposed meanwhile: the epoll instance took every registration with it
        if (rc == 0) return;
        int errno = Errno.Last;
        if (errno is not (Errno.ENOENT or Errno.EBADF)) throw Errno.Exception("epoll_ctl(EPOLL_CTL_DEL)", errno, $"descriptor {fd}");
    }

    /// <summary>Closes the epoll instance and the eventfd (after waking a blocked <see cref="Wait"/>). Any thread; idempotent.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        Signal();
        _wake.Dispose();
        _epoll.Dispose();
    }

    private void Control(int op, string call, int fd, PollEvents interest, long token)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(fd);
        if (token == WakeToken) throw new ArgumentException($"token {WakeToken} is reserved for the waiter's eventfd", nameof(token));
        if ((interest & ~(PollEvents.Readable | PollEvents.Writable)) != 0)
            throw new ArgumentOutOfRangeException(nameof(interest), interest, "a descriptor is watched for Readable and/or Writable only");
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        if (Libc.EpollCtl(_epoll, op, fd, ToEpollEvents(interest), unchecked((ulong)token)) != 0)
            throw Errno.Exception(call, $"descriptor {fd}");
    }

    private static uint ToEpollEvents(PollEvents interest)
    {
        // Level-triggered (no EPOLLET). EPOLLERR and EPOLLHUP are always reported. EPOLLRDHUP (the peer shut only its
        // sending side) is not asked for: level-triggered, it would wake the loop on every pass while a connection
        // that has read its last request still writes replies; a reader sees that end of stream as a 0-byte read.
        uint events = 0;
        if ((interest & PollEvents.Readable) != 0) events |= Libc.EPOLLIN;
        if ((interest & PollEvents.Writable) != 0) events |= Libc.EPOLLOUT;
        return events;
    }

    private static PollEvents ToPollEvents(uint events)
    {
        if ((events & (Libc.EPOLLERR | Libc.EPOLLHUP | Libc.EPOLLRDHUP)) != 0) return PollEvents.Readable | PollEvents.Writable;
        var ready = PollEvents.None;
        if ((events & Libc.EPOLLIN) != 0) ready |= PollEvents.Readable;
        if ((events & Libc.EPOLLOUT) != 0) ready |= PollEvents.Writable;
        return ready;
    }

    /// <summary>Writes 1 to the eventfd. EAGAIN (the counter is full, so already readable) and a disposed waiter are ignored.</summary>
    private void Signal()
    {
        // NOTE: sys/eventfd.h: a write adds a host-endian uint64_t of exactly 8 bytes to the counter.
        Span<byte> one = stackalloc byte[sizeof(ulong)];
        MemoryMarshal.Write(one, 1UL);
        try { Libc.Write(_wake, one); }
        catch (ObjectDisposedException) { /* nothing left to wake */ }
    }

    /// <summary>Loop thread: resets the eventfd counter and ends the pending wake.</summary>
    private void DrainWake()
    {
        Span<byte> counter = stackalloc byte[sizeof(ulong)];
        // Without EFD_SEMAPHORE one read returns the whole counter and resets it to 0.
        try { Libc.Read(_wake, counter); }
        catch (ObjectDisposedException) { /* Dispose woke this Wait: nothing to reset */ }
        // Only after the read: a Wake that saw 1 until here is served by this Wait returning; one that comes after
        // writes the eventfd again. An exchange, not a plain store, so that the loop also sees what such a Wake's
        // caller published before it.
        Interlocked.Exchange(ref _wakePending, 0);
    }
}
