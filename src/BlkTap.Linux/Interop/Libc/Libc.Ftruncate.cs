using System.Runtime.InteropServices;

namespace BlkTap.Linux.Interop;

internal static partial class Libc
{
    [LibraryImport(Libraries.Libc, EntryPoint = "ftruncate", SetLastError = true)]
    private static partial int FtruncateRaw(SafeFdHandle fd, long length);

    /// <summary>ftruncate(2), retried on EINTR. Returns 0, or the errno of the failure.</summary>
    public static int Ftruncate(SafeFdHandle fd, long length)
    {
        int rc;
        do rc = FtruncateRaw(fd, length);
        while (rc == -1 && Errno.Last == Errno.EINTR);
        return rc == 0 ? 0 : Errno.Last;
    }
}
