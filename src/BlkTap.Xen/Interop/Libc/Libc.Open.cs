using System.Runtime.InteropServices;

namespace BlkTap.Xen.Interop;

internal static partial class Libc
{
    // NOTE: open(2) is variadic (mode_t is the optional third argument). On x86_64 and aarch64 Linux an int
    // variadic argument is passed exactly like a fixed one, so binding it with a fixed third int is safe there.
    [LibraryImport(Libraries.Libc, EntryPoint = "open", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial SafeFdHandle OpenRaw(string path, int flags, int mode);

    /// <summary>open(2), retried on EINTR. Returns an invalid handle on failure (errno in <see cref="Errno.Last"/>).</summary>
    public static SafeFdHandle Open(string path, int flags, int mode = 0)
    {
        while (true)
        {
            var fd = OpenRaw(path, flags | O_CLOEXEC, mode);
            if (!fd.IsInvalid || Errno.Last != Errno.EINTR) return fd;
            fd.Dispose();
        }
    }
}
