using System.Runtime.InteropServices;

namespace BlkTap.Linux.Interop;

internal static partial class Libc
{
    /// <summary>munmap(2). Returns 0, or -1 with errno set.</summary>
    [LibraryImport(Libraries.Libc, EntryPoint = "munmap", SetLastError = true)]
    public static partial int Munmap(nint addr, nuint length);
}
