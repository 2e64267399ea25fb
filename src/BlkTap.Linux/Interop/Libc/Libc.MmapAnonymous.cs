using System.Runtime.InteropServices;

namespace BlkTap.Linux.Interop;

internal static partial class Libc
{
    [LibraryImport(Libraries.Libc, EntryPoint = "mmap", SetLastError = true)]
    private static partial nint MmapNoFile(nint addr, nuint length, int prot, int flags, int fd, long offset);

    /// <summary>
    /// mmap(2) of <paramref name="length"/> bytes of private anonymous memory (zero-filled on first touch), readable and
    /// writable. Returns the address, or <see cref="MAP_FAILED"/> with errno set.
    /// </summary>
    // NOTE: MAP_ANONYMOUS ignores fd and offset; the man page asks for fd -1 for portability.
    public static nint MmapAnonymous(nuint length) =>
        MmapNoFile(0, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
}
