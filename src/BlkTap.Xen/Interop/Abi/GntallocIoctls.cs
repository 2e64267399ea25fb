using System.Runtime.CompilerServices;
using BlkTap.Linux.Interop;

namespace BlkTap.Xen.Interop;

/// <summary>The gntalloc ioctl requests and flags.</summary>
/// <remarks>
/// NOTE: gntalloc.h defines each as <c>_IOC(_IOC_NONE, 'G', nr, sizeof(struct ...))</c>, sharing type 'G' with
/// gntdev.h (numbers 5-7 are gntalloc's): the size is part of the number, so the declared struct sizes (24 and 16,
/// padding included) must be used, never the used length of the variable-size argument.
/// </remarks>
internal static class GntallocIoctls
{
    /// <summary>The device node.</summary>
    public const string DevicePath = "/dev/xen/gntalloc";

    /// <summary>The kernel module that creates <see cref="DevicePath"/>.</summary>
    public const string Module = "xen-gntalloc";

    /// <summary>0x00184705 on x86_64.</summary>
    public static readonly uint IOCTL_GNTALLOC_ALLOC_GREF =
        LinuxIoctl.Ioc(LinuxIoctl.IOC_NONE, 'G', 5, Unsafe.SizeOf<IoctlGntallocAllocGref>());

    /// <summary>0x00104706 on x86_64.</summary>
    public static readonly uint IOCTL_GNTALLOC_DEALLOC_GREF =
        LinuxIoctl.Ioc(LinuxIoctl.IOC_NONE, 'G', 6, Unsafe.SizeOf<IoctlGntallocDeallocGref>());

    /// <summary><c>GNTALLOC_FLAG_WRITABLE</c>: the remote domain may map the pages writable (else read-only).</summary>
    public const ushort GNTALLOC_FLAG_WRITABLE = 1;
}
