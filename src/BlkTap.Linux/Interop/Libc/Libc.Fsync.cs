using System.Runtime.InteropServices;

namespace BlkTap.Linux.Interop;

internal static partial class Libc
{
    [LibraryImport(Libraries.Libc, EntryPoint = "fsync", SetLastError = true)]
    private static partial int FsyncRaw(SafeFdHandle fd);

    /// <summary>fsync(2), retried on EINTR. Returns 0, or the errno of the failure.</summary>
    public static int Fsync(SafeFdHandle fd)
    {
        int rc;
        do rc = FsyncRaw(fd);
        while (rc == -1 && Errno.Last == Errno.EINTR);
        return rc == 0 ? 0 : Errno.Last;
    }
}
