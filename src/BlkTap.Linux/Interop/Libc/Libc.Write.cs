using System.Runtime.InteropServices;

namespace BlkTap.Linux.Interop;

internal static partial class Libc
{
    [LibraryImport(Libraries.Libc, EntryPoint = "write", SetLastError = true)]
    private static unsafe partial nint WriteRaw(SafeFdHandle fd, byte* buffer, nuint count);

    /// <summary>write(2), retried on EINTR. Returns the byte count or -1 on failure (errno set).</summary>
    public static unsafe int Write(SafeFdHandle fd, ReadOnlySpan<byte> buffer)
    {
        fixed (byte* p = buffer)
        {
            nint rc;
            do rc = WriteRaw(fd, p, (nuint)buffer.Length);
            while (rc == -1 && Errno.Last == Errno.EINTR);
            return (int)rc;
        }
    }
}
