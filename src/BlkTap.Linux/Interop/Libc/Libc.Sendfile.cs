using System.Runtime.InteropServices;

namespace BlkTap.Linux.Interop;

internal static partial class Libc
{
    [LibraryImport(Libraries.Libc, EntryPoint = "sendfile64", SetLastError = true)]
    private static unsafe partial nint SendfileRaw(int outFd, Microsoft.Win32.SafeHandles.SafeFileHandle inFd, long* offset, nuint count);

    /// <summary>
    /// sendfile(2) from a file at <paramref name="offset"/> to <paramref name="outFd"/> (a socket), retried on EINTR.
    /// Returns the bytes sent (fewer than asked when a non-blocking socket fills, 0 at the file's end), or minus the errno.
    /// </summary>
    // NOTE: <sys/sendfile.h>: ssize_t sendfile(int out_fd, int in_fd, off_t *offset, size_t count); with a non-null
    // offset the file position is neither used nor changed, so concurrent positional I/O on the file is unaffected.
    // sendfile64 takes a 64-bit off_t on every ABI. The pages go to the socket by reference (splice), not copied.
    public static unsafe nint Sendfile(int outFd, Microsoft.Win32.SafeHandles.SafeFileHandle inFd, long offset, nuint count)
    {
        nint rc;
        do rc = SendfileRaw(outFd, inFd, &offset, count);
        while (rc == -1 && Errno.Last == Errno.EINTR);
        return rc >= 0 ? rc : -Errno.Last;
    }
}
