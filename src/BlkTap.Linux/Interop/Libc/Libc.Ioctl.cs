using System.Runtime.InteropServices;

namespace BlkTap.Linux.Interop;

internal static partial class Libc
{
    // NOTE: ioctl(2) is variadic; the third argument is a pointer-sized value, passed like a fixed argument
    // on x86_64 and aarch64 Linux. The request is `unsigned long` in glibc.
    [LibraryImport(Libraries.Libc, EntryPoint = "ioctl", SetLastError = true)]
    private static unsafe partial int IoctlRaw(SafeFdHandle fd, nuint request, void* arg);

    /// <summary>ioctl(2) with a pointer argument, retried on EINTR. Returns -1 on failure (errno set).</summary>
    public static unsafe int Ioctl(SafeFdHandle fd, uint request, void* arg)
    {
        int rc;
        do rc = IoctlRaw(fd, request, arg);
        while (rc == -1 && Errno.Last == Errno.EINTR);
        return rc;
    }
}
