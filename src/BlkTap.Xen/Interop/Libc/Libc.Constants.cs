namespace BlkTap.Xen.Interop;

/// <summary>libc constants used by the wrappers.</summary>
/// <remarks>NOTE: values from Linux asm-generic/fcntl.h, asm-generic/mman-common.h and asm-generic/poll.h;
/// x86_64 and aarch64 use the generic values.</remarks>
internal static partial class Libc
{
    public const int O_RDONLY = 0;
    public const int O_RDWR = 2;
    public const int O_NONBLOCK = 0x800;
    public const int O_CLOEXEC = 0x80000;

    // NOTE: linux/falloc.h.
    public const int FALLOC_FL_KEEP_SIZE = 0x01;
    public const int FALLOC_FL_PUNCH_HOLE = 0x02;

    public const int PROT_NONE = 0;
    public const int PROT_READ = 1;
    public const int PROT_WRITE = 2;

    public const int MAP_SHARED = 1;

    /// <summary>mmap's failure value, <c>(void *)-1</c>.</summary>
    public static readonly nint MAP_FAILED = -1;

    public const short POLLIN = 0x1;
    public const short POLLERR = 0x8;
    public const short POLLHUP = 0x10;
    public const short POLLNVAL = 0x20;
}
