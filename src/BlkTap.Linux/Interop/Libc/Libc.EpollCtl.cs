using System.Runtime.InteropServices;

namespace BlkTap.Linux.Interop;

internal static partial class Libc
{
    [LibraryImport(Libraries.Libc, EntryPoint = "epoll_ctl", SetLastError = true)]
    private static unsafe partial int EpollCtlRaw(SafeFdHandle epfd, int op, int fd, EpollEvent* ev);

    /// <summary>
    /// epoll_ctl(2): adds, modifies or deletes (<paramref name="op"/>: EPOLL_CTL_*) <paramref name="fd"/> in the
    /// interest list of <paramref name="epfd"/>, reporting <paramref name="events"/> with <paramref name="data"/>.
    /// Not retried: epoll_ctl does not fail with EINTR. Returns 0, or -1 with errno set.
    /// </summary>
    public static unsafe int EpollCtl(SafeFdHandle epfd, int op, int fd, uint events, ulong data)
    {
        // NOTE: epoll_ctl(2) BUGS: kernels before 2.6.9 require a non-null event even for EPOLL_CTL_DEL, so one is
        // always passed.
        var ev = new EpollEvent { Events = events, Data = data };
        return EpollCtlRaw(epfd, op, fd, &ev);
    }
}
