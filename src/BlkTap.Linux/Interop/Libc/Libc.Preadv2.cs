using System.Runtime.InteropServices;

namespace BlkTap.Linux.Interop;

internal static partial class Libc
{
    [LibraryImport(Libraries.Libc, EntryPoint = "preadv2", SetLastError = true)]
    private static unsafe partial nint Preadv2Raw(Microsoft.Win32.SafeHandles.SafeFileHandle fd, IoVec* iov, int count, long offset, int flags);

    /// <summary>
    /// preadv2(2) of one buffer, retried on EINTR. Returns the byte count, or minus the errno of the failure (with
    /// <see cref="RWF_NOWAIT"/>: -EAGAIN when the data is not in the page cache, -EOPNOTSUPP where the file does not
    /// support the flag).
    /// </summary>
    public static unsafe nint Preadv2(Microsoft.Win32.SafeHandles.SafeFileHandle fd, byte* buffer, nuint length, long offset, int flags)
    {
        var iov = new IoVec { Base = (nint)buffer, Length = length };
        nint rc;
        do rc = Preadv2Raw(fd, &iov, 1, offset, flags);
        while (rc == -1 && Errno.Last == Errno.EINTR);
        return rc >= 0 ? rc : -Errno.Last;
    }
}
