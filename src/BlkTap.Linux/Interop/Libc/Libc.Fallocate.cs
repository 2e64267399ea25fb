using System.Runtime.InteropServices;

namespace BlkTap.Linux.Interop;

internal static partial class Libc
{
    [LibraryImport(Libraries.Libc, EntryPoint = "fallocate", SetLastError = true)]
    private static partial int FallocateRaw(Microsoft.Win32.SafeHandles.SafeFileHandle fd, int mode, long offset, long length);

    /// <summary>fallocate(2), retried on EINTR. Returns 0, or the errno of the failure.</summary>
    public static int Fallocate(Microsoft.Win32.SafeHandles.SafeFileHandle fd, int mode, long offset, long length)
    {
        int rc;
        do rc = FallocateRaw(fd, mode, offset, length);
        while (rc == -1 && Errno.Last == Errno.EINTR);
        return rc == 0 ? 0 : Errno.Last;
    }
}
