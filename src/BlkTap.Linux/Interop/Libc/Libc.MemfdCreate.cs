using System.Runtime.InteropServices;

namespace BlkTap.Linux.Interop;

internal static partial class Libc
{
    // NOTE: memfd_create returns a 32-bit int; like open it is not marshalled straight into a SafeHandle.
    [LibraryImport(Libraries.Libc, EntryPoint = "memfd_create", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int MemfdCreateRaw(string name, uint flags);

    /// <summary>memfd_create(2) (sys/mman.h). Returns an invalid handle on failure (errno in <see cref="Errno.Last"/>).</summary>
    public static SafeFdHandle MemfdCreate(string name, uint flags)
    {
        int fd = MemfdCreateRaw(name, flags);
        return new SafeFdHandle(fd < 0 ? -1 : fd);
    }
}
