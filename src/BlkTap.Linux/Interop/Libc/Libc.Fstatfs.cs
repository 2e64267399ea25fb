using System.Runtime.InteropServices;

namespace BlkTap.Linux.Interop;

internal static partial class Libc
{
    // NOTE: <bits/statfs.h> (glibc, LP64): struct statfs is 120 bytes and starts with f_type (__fsword_t, 8 bytes on
    // x86_64 and aarch64). Only f_type is read; the buffer is the whole struct so the kernel's copy fits.
    private const int StatfsSize = 120;

    [LibraryImport(Libraries.Libc, EntryPoint = "fstatfs", SetLastError = true)]
    private static unsafe partial int FstatfsRaw(Microsoft.Win32.SafeHandles.SafeFileHandle fd, byte* buf);

    /// <summary>fstatfs(2), retried on EINTR: the file system's magic number (f_type), or minus the errno of the failure.</summary>
    public static unsafe long FstatfsType(Microsoft.Win32.SafeHandles.SafeFileHandle fd)
    {
        byte* buf = stackalloc byte[StatfsSize];
        int rc;
        do rc = FstatfsRaw(fd, buf);
        while (rc == -1 && Errno.Last == Errno.EINTR);
        return rc == 0 ? *(long*)buf : -Errno.Last;
    }
}
