using System.Runtime.InteropServices;

namespace BlkTap.Linux.Interop;

internal static partial class Libc
{
    // NOTE: fcntl(2) is variadic; its optional third argument here is an int (the seals of F_ADD_SEALS), passed
    // like a fixed argument on x86_64 and aarch64 Linux (as for open).
    [LibraryImport(Libraries.Libc, EntryPoint = "fcntl", SetLastError = true)]
    private static partial int FcntlRaw(SafeFdHandle fd, int command, int argument);

    /// <summary>fcntl(2) with an int argument, retried on EINTR. Returns the call's result, or -1 (errno set).</summary>
    public static int Fcntl(SafeFdHandle fd, int command, int argument)
    {
        int rc;
        do rc = FcntlRaw(fd, command, argument);
        while (rc == -1 && Errno.Last == Errno.EINTR);
        return rc;
    }
}
