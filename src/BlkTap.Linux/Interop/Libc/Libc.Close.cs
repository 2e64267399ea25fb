using System.Runtime.InteropServices;

namespace BlkTap.Linux.Interop;

internal static partial class Libc
{
    /// <summary>close(2). Not retried on EINTR: on Linux the descriptor is released even then.</summary>
    // NOTE: Linux close(2) man page: "the file descriptor is guaranteed to be closed" even on EINTR; retrying
    // could close a descriptor another thread just opened.
    [LibraryImport(Libraries.Libc, EntryPoint = "close", SetLastError = true)]
    public static partial int Close(int fd);
}
