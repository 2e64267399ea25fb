using System.Runtime.InteropServices;

namespace BlkTap.Linux.Interop;

internal static partial class Libc
{
    // NOTE: eventfd returns a 32-bit int; it is not marshalled straight into a SafeHandle (see Libc.Open).
    [LibraryImport(Libraries.Libc, EntryPoint = "eventfd", SetLastError = true)]
    private static partial int EventfdRaw(uint initialValue, int flags);

    /// <summary>
    /// eventfd(2) with a zero counter, EFD_CLOEXEC and <paramref name="flags"/> (EFD_NONBLOCK). Not retried: eventfd
    /// does not fail with EINTR. Returns an invalid handle on failure (errno in <see cref="Errno.Last"/>).
    /// </summary>
    /// <remarks>NOTE: sys/eventfd.h: reads and writes move a host-endian uint64_t, exactly 8 bytes.</remarks>
    public static SafeFdHandle Eventfd(int flags)
    {
        int fd = EventfdRaw(0, EFD_CLOEXEC | flags);
        return new SafeFdHandle(fd < 0 ? -1 : fd);
    }
}
