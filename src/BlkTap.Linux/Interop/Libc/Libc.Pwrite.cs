using System.Runtime.InteropServices;

namespace BlkTap.Linux.Interop;

internal static partial class Libc
{
    // NOTE: SuppressGCTransition, as for PreadInMemory (Libc.Pread.cs): only for files in memory (tmpfs, ramfs).
    [LibraryImport(Libraries.Libc, EntryPoint = "pwrite", SetLastError = true)]
    [SuppressGCTransition]
    private static unsafe partial nint PwriteInMemoryRaw(int fd, byte* buffer, nuint count, long offset);

    /// <summary>
    /// pwrite(2) on a file in memory, retried on EINTR, without the runtime's GC transition. Returns the byte count (it
    /// may be short: ENOSPC comes on the next call), or minus the errno of the failure.
    /// </summary>
    public static unsafe nint PwriteInMemory(int fd, byte* buffer, nuint count, long offset)
    {
        nint rc;
        do rc = PwriteInMemoryRaw(fd, buffer, count, offset);
        while (rc == -1 && Errno.Last == Errno.EINTR);
        return rc >= 0 ? rc : -Errno.Last;
    }
}
