using System.Runtime.InteropServices;

namespace BlkTap.Linux.Interop;

internal static partial class Libc
{
    // NOTE: open(2) is variadic (mode_t is the optional third argument). On x86_64 and aarch64 Linux an int
    // variadic argument is passed exactly like a fixed one, so binding it with a fixed third int is safe there.
    // NOTE: open returns a 32-bit int; it must not be marshalled straight into a SafeHandle, whose native
    // representation is pointer-sized (the upper half of the return register is not sign-extended, so -1 would
    // arrive as 0xFFFFFFFF and look valid).
    [LibraryImport(Libraries.Libc, EntryPoint = "open", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int OpenRaw(string path, int flags, int mode);

    /// <summary>open(2), retried on EINTR. Returns an invalid handle on failure (errno in <see cref="Errno.Last"/>).</summary>
    public static SafeFdHandle Open(string path, int flags, int mode = 0)
    {
        while (true)
        {
            int fd = OpenRaw(path, flags | O_CLOEXEC, mode);
            if (fd >= 0 || Errno.Last != Errno.EINTR) return new SafeFdHandle(fd < 0 ? -1 : fd);
        }
    }
}
