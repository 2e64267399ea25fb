using System.Runtime.InteropServices;

namespace BlkTap.Linux.Interop;

internal static partial class Libc
{
    // NOTE: epoll_create1 returns a 32-bit int; it is not marshalled straight into a SafeHandle (see Libc.Open).
    [LibraryImport(Libraries.Libc, EntryPoint = "epoll_create1", SetLastError = true)]
    private static partial int EpollCreate1Raw(int flags);

    /// <summary>
    /// epoll_create1(2) with EPOLL_CLOEXEC. Not retried: epoll_create1 does not fail with EINTR.
    /// Returns an invalid handle on failure (errno in <see cref="Errno.Last"/>).
    /// </summary>
    public static SafeFdHandle EpollCreate1()
    {
        int fd = EpollCreate1Raw(EPOLL_CLOEXEC);
        return new SafeFdHandle(fd < 0 ? -1 : fd);
    }
}
