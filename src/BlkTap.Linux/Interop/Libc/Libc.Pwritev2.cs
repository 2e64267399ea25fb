using System.Runtime.InteropServices;

namespace BlkTap.Linux.Interop;

internal static partial class Libc
{
    [LibraryImport(Libraries.Libc, EntryPoint = "pwritev2", SetLastError = true)]
    private static unsafe partial nint Pwritev2Raw(Microsoft.Win32.SafeHandles.SafeFileHandle fd, IoVec* iov, int count, long offset, int flags);

    /// <summary>
    /// pwritev2(2) of one buffer, retried on EINTR. Returns the byte count (possibly short), or minus the errno of the
    /// failure (with <see cref="RWF_NOWAIT"/>: -EAGAIN when it would block, -EOPNOTSUPP where the file does not
    /// support the flag for this kind of write).
    /// </summary>
    public static unsafe nint Pwritev2(Microsoft.Win32.SafeHandles.SafeFileHandle fd, byte* data, nuint length, long offset, int flags)
    {
        var iov = new IoVec { Base = (nint)data, Length = length };
        nint rc;
        do rc = Pwritev2Raw(fd, &iov, 1, offset, flags);
        while (rc == -1 && Errno.Last == Errno.EINTR);
        return rc >= 0 ? rc : -Errno.Last;
    }
}
