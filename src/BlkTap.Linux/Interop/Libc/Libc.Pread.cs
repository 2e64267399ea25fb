using System.Runtime.InteropServices;

namespace BlkTap.Linux.Interop;

internal static partial class Libc
{
    // NOTE: SuppressGCTransition: the thread stays in cooperative mode during the call, so a garbage collection waits for
    // it to return. Only for files in memory (tmpfs, ramfs), whose pread never waits for a device (a copy of at most
    // what the caller asks, about 2 µs for 4 KiB); a file on a disk goes through RandomAccess.
    [LibraryImport(Libraries.Libc, EntryPoint = "pread", SetLastError = true)]
    [SuppressGCTransition]
    private static unsafe partial nint PreadInMemoryRaw(int fd, byte* buffer, nuint count, long offset);

    /// <summary>
    /// pread(2) on a file in memory, retried on EINTR, without the runtime's GC transition (see the note). Returns the
    /// byte count (0 at the end of the file), or minus the errno of the failure.
    /// </summary>
    public static unsafe nint PreadInMemory(int fd, byte* buffer, nuint count, long offset)
    {
        nint rc;
        do rc = PreadInMemoryRaw(fd, buffer, count, offset);
        while (rc == -1 && Errno.Last == Errno.EINTR);
        return rc >= 0 ? rc : -Errno.Last;
    }
}
