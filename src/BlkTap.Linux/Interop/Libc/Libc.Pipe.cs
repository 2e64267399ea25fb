using System.Runtime.InteropServices;

namespace BlkTap.Linux.Interop;

internal static partial class Libc
{
    [LibraryImport(Libraries.Libc, EntryPoint = "pipe2", SetLastError = true)]
    private static unsafe partial int Pipe2Raw(int* fds, int flags);

    /// <summary>pipe2(2) with O_CLOEXEC|O_NONBLOCK: used to wake poll threads. Throws on failure.</summary>
    public static unsafe (SafeFdHandle Read, SafeFdHandle Write) Pipe()
    {
        int* fds = stackalloc int[2];
        if (Pipe2Raw(fds, O_CLOEXEC | O_NONBLOCK) != 0) throw Errno.Exception("pipe2");
        return (new SafeFdHandle(fds[0]), new SafeFdHandle(fds[1]));
    }
}
