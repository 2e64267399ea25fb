using System.Runtime.InteropServices;

namespace BlkTap.Linux.Interop;

internal static partial class Libc
{
    /// <summary>madvise(2). Returns 0, or -1 with errno set.</summary>
    [LibraryImport(Libraries.Libc, EntryPoint = "madvise", SetLastError = true)]
    public static partial int Madvise(nint addr, nuint length, int advice);
}
