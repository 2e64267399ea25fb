using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace BlkTap.Linux.Interop;

internal static partial class Libc
{
    [LibraryImport(Libraries.Libc, EntryPoint = "mmap", SetLastError = true)]
    private static partial nint MmapRaw(nint addr, nuint length, int prot, int flags, SafeFdHandle fd, long offset);

    /// <summary>
    /// mmap(2) of <paramref name="length"/> bytes of <paramref name="fd"/> at <paramref name="offset"/>.
    /// Returns an invalid handle on failure (errno set).
    /// </summary>
    public static SafeMmapHandle Mmap(nuint length, int prot, int flags, SafeFdHandle fd, long offset)
    {
        var address = MmapRaw(0, length, prot, flags, fd, offset);
        return address == MAP_FAILED ? SafeMmapHandle.Invalid() : new SafeMmapHandle(address, length);
    }

    [LibraryImport(Libraries.Libc, EntryPoint = "mmap", SetLastError = true)]
    private static partial nint MmapFileRaw(nint addr, nuint length, int prot, int flags, SafeFileHandle fd, long offset);

    /// <summary>mmap(2) of an opened file (a <see cref="SafeFileHandle"/>); an invalid handle on failure (errno set).</summary>
    public static SafeMmapHandle Mmap(nuint length, int prot, int flags, SafeFileHandle fd, long offset)
    {
        var address = MmapFileRaw(0, length, prot, flags, fd, offset);
        return address == MAP_FAILED ? SafeMmapHandle.Invalid() : new SafeMmapHandle(address, length);
    }
}
