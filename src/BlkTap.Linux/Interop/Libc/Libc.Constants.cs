namespace BlkTap.Linux.Interop;

/// <summary>libc constants used by the wrappers.</summary>
/// <remarks>NOTE: values from Linux asm-generic/fcntl.h, asm-generic/mman-common.h and asm-generic/poll.h;
/// x86_64 and aarch64 use the generic values. The epoll and eventfd values come from sys/epoll.h and
/// sys/eventfd.h.</remarks>
internal static partial class Libc
{
    public const int O_RDONLY = 0;
    public const int O_RDWR = 2;
    public const int O_NONBLOCK = 0x800;
    public const int O_CLOEXEC = 0x80000;
    public const int O_DIRECTORY = 0x10000; // NOTE: asm-generic/fcntl.h 00200000 (x86_64); arm64 uses 040000.

    // NOTE: linux/falloc.h.
    public const int FALLOC_FL_KEEP_SIZE = 0x01;
    public const int FALLOC_FL_PUNCH_HOLE = 0x02;

    // NOTE: linux/fs.h: RWF_NOWAIT 0x00000008 (preadv2/pwritev2: fail with EAGAIN instead of waiting for the device).
    public const int RWF_NOWAIT = 0x08;
    // NOTE: linux/magic.h: TMPFS_MAGIC 0x01021994, RAMFS_MAGIC 0x858458f6 (files that live in memory).
    public const long TMPFS_MAGIC = 0x01021994;
    public const long RAMFS_MAGIC = 0x858458f6;

    public const int PROT_NONE = 0;
    public const int PROT_READ = 1;
    public const int PROT_WRITE = 2;

    public const int MAP_SHARED = 1;
    // NOTE: bits/mman-linux.h (x86_64, aarch64): MAP_PRIVATE 0x02, MAP_ANONYMOUS 0x20; asm-generic/mman-common.h:
    // MADV_DONTNEED 4 (private anonymous pages read as zeroes afterwards), MADV_HUGEPAGE 14.
    public const int MAP_PRIVATE = 0x02;
    public const int MAP_ANONYMOUS = 0x20;
    public const int MADV_DONTNEED = 4;
    public const int MADV_HUGEPAGE = 14;

    // NOTE: linux/memfd.h (MFD_*) and linux/fcntl.h (F_ADD_SEALS = F_LINUX_SPECIFIC_BASE 1024 + 9, F_SEAL_*).
    public const uint MFD_CLOEXEC = 0x1;
    public const uint MFD_ALLOW_SEALING = 0x2;
    public const int F_ADD_SEALS = 1033;
    public const int F_GET_SEALS = 1034;
    public const int F_SEAL_SEAL = 0x1;
    public const int F_SEAL_SHRINK = 0x2;
    public const int F_SEAL_GROW = 0x4;

    // NOTE: bits/socket.h: SOL_SOCKET and SCM_RIGHTS are 1 on x86_64 and aarch64; MSG_NOSIGNAL 0x4000.
    public const int SOL_SOCKET = 1;
    public const int SCM_RIGHTS = 1;
    public const int MSG_NOSIGNAL = 0x4000;

    /// <summary>mmap's failure value, <c>(void *)-1</c>.</summary>
    public static readonly nint MAP_FAILED = -1;

    public const short POLLIN = 0x1;
    public const short POLLERR = 0x8;
    public const short POLLHUP = 0x10;
    public const short POLLNVAL = 0x20;

    // NOTE: sys/epoll.h (enum EPOLL_EVENTS, uint32_t like struct epoll_event's events; the same values as the
    // kernel's uapi linux/eventpoll.h). EPOLL_CLOEXEC is O_CLOEXEC.
    public const uint EPOLLIN = 0x001;
    public const uint EPOLLOUT = 0x004;
    public const uint EPOLLERR = 0x008;
    public const uint EPOLLHUP = 0x010;
    public const uint EPOLLRDHUP = 0x2000;
    public const int EPOLL_CTL_ADD = 1;
    public const int EPOLL_CTL_DEL = 2;
    public const int EPOLL_CTL_MOD = 3;
    public const int EPOLL_CLOEXEC = 0x80000;

    // NOTE: sys/eventfd.h (bits/eventfd.h): EFD_CLOEXEC is O_CLOEXEC, EFD_NONBLOCK is O_NONBLOCK.
    public const int EFD_CLOEXEC = 0x80000;
    public const int EFD_NONBLOCK = 0x800;
}
