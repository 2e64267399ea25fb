using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace BlkTap.Linux.Interop;

internal static partial class Libc
{
    // NOTE: <unistd.h> (Linux, glibc with _GNU_SOURCE): SEEK_DATA 3, SEEK_HOLE 4; lseek(2) answers ENXIO to SEEK_DATA
    // when no data lies at or after the offset (and to either when the offset is at or past the end of the file).
    public const int SEEK_DATA = 3;
    public const int SEEK_HOLE = 4;

    [LibraryImport(Libraries.Libc, EntryPoint = "lseek", SetLastError = true)]
    private static partial long LseekRaw(SafeFileHandle fd, long offset, int whence);

    /// <summary>lseek(2): the resulting offset, or minus the errno of the failure.</summary>
    public static long Lseek(SafeFileHandle fd, long offset, int whence)
    {
        long rc = LseekRaw(fd, offset, whence);
        return rc >= 0 ? rc : -Errno.Last;
    }
}
