using System.Runtime.InteropServices;

namespace BlkTap.Linux.Interop;

internal static partial class Libc
{
    [LibraryImport(Libraries.Libc, EntryPoint = "epoll_wait", SetLastError = true)]
    private static unsafe partial int EpollWaitRaw(SafeFdHandle epfd, EpollEvent* events, int maxEvents, int timeoutMs);

    /// <summary>
    /// epoll_wait(2) into <paramref name="events"/> (at most <paramref name="maxEvents"/> entries), retried on EINTR
    /// (with the full timeout again). Returns the number of entries written, 0 on timeout, -1 on failure (errno set).
    /// </summary>
    public static unsafe int EpollWait(SafeFdHandle epfd, EpollEvent* events, int maxEvents, int timeoutMs)
    {
        int rc;
        do rc = EpollWaitRaw(epfd, events, maxEvents, timeoutMs);
        while (rc == -1 && Errno.Last == Errno.EINTR);
        return rc;
    }
}
