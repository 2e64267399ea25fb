using System.Runtime.InteropServices;

namespace BlkTap.Linux.Interop;

internal static partial class Libc
{
    /// <summary>free(3): releases memory libxenstore returned (xs_read, xs_directory, xs_read_watch).</summary>
    // NOTE: xenstore.h: "Returns a malloced value: call free() on it after use."
    [LibraryImport(Libraries.Libc, EntryPoint = "free")]
    public static partial void Free(nint pointer);
}
