using System.Runtime.InteropServices;

namespace BlkTap.Linux.Interop;

/// <summary><c>struct iovec</c> from &lt;sys/uio.h&gt;: iov_base @0 (void *), iov_len @8 (size_t); 16 bytes on LP64.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct IoVec
{
    public nint Base;
    public nuint Length;
}

internal static partial class Libc
{
    [LibraryImport(Libraries.Libc, EntryPoint = "writev", SetLastError = true)]
    private static unsafe partial nint WritevRaw(int fd, IoVec* iov, int count);

    /// <summary>writev(2), retried on EINTR. Returns the byte count or -1 on failure (errno set).</summary>
    // NOTE: writev on a socket whose peer has gone raises SIGPIPE unless ignored; the .NET runtime ignores SIGPIPE,
    // so the call fails with EPIPE instead (checked in LibcInteropTests).
    public static unsafe nint Writev(int fd, IoVec* iov, int count)
    {
        nint rc;
        do rc = WritevRaw(fd, iov, count);
        while (rc == -1 && Errno.Last == Errno.EINTR);
        return rc;
    }
}
