using System.Runtime.InteropServices;

namespace BlkTap.Linux.Interop;

internal static partial class Libc
{
    [LibraryImport(Libraries.Libc, EntryPoint = "read", SetLastError = true)]
    private static unsafe partial nint ReadRaw(SafeFdHandle fd, byte* buffer, nuint count);

    /// <summary>read(2), retried on EINTR. Returns the byte count, 0 at end of file, -1 on failure (errno set).</summary>
    public static unsafe int Read(SafeFdHandle fd, Span<byte> buffer)
    {
        fixed (byte* p = buffer)
        {
            nint rc;
            do rc = ReadRaw(fd, p, (nuint)buffer.Length);
            while (rc == -1 && Errno.Last == Errno.EINTR);
            return (int)rc;
        }
    }

    [LibraryImport(Libraries.Libc, EntryPoint = "read", SetLastError = true)]
    private static unsafe partial nint ReadFdRaw(int fd, byte* buffer, nuint count);

    /// <summary>read(2) on a descriptor the caller keeps alive, retried on EINTR. Returns the count, 0 at EOF, -1 (errno set).</summary>
    public static unsafe nint ReadFd(int fd, byte* buffer, nuint count)
    {
        nint rc;
        do rc = ReadFdRaw(fd, buffer, count);
        while (rc == -1 && Errno.Last == Errno.EINTR);
        return rc;
    }
}
