using System.Runtime.CompilerServices;
using BlkTap.Linux.Interop;

namespace BlkTap.Xen.Interop;

/// <summary>The gntdev ioctl requests and flags.</summary>
/// <remarks>NOTE: gntdev.h defines each as <c>_IOC(_IOC_NONE, 'G', nr, sizeof(struct ...))</c>: the size is part
/// of the number, so a wrong C# struct size also yields a wrong request (both are checked by the ABI tests).</remarks>
internal static class GntdevIoctls
{
    /// <summary>The device node.</summary>
    public const string DevicePath = "/dev/xen/gntdev";

    public static readonly uint IOCTL_GNTDEV_MAP_GRANT_REF =
        LinuxIoctl.Ioc(LinuxIoctl.IOC_NONE, 'G', 0, Unsafe.SizeOf<IoctlGntdevMapGrantRef>());
    public static readonly uint IOCTL_GNTDEV_UNMAP_GRANT_REF =
        LinuxIoctl.Ioc(LinuxIoctl.IOC_NONE, 'G', 1, Unsafe.SizeOf<IoctlGntdevUnmapGrantRef>());
    public static readonly uint IOCTL_GNTDEV_GET_OFFSET_FOR_VADDR =
        LinuxIoctl.Ioc(LinuxIoctl.IOC_NONE, 'G', 2, Unsafe.SizeOf<IoctlGntdevGetOffsetForVaddr>());
    public static readonly uint IOCTL_GNTDEV_SET_MAX_GRANTS =
        LinuxIoctl.Ioc(LinuxIoctl.IOC_NONE, 'G', 3, Unsafe.SizeOf<IoctlGntdevSetMaxGrants>());
    public static readonly uint IOCTL_GNTDEV_SET_UNMAP_NOTIFY =
        LinuxIoctl.Ioc(LinuxIoctl.IOC_NONE, 'G', 7, Unsafe.SizeOf<IoctlGntdevUnmapNotify>());
    public static readonly uint IOCTL_GNTDEV_GRANT_COPY =
        LinuxIoctl.Ioc(LinuxIoctl.IOC_NONE, 'G', 8, Unsafe.SizeOf<IoctlGntdevGrantCopy>());

    /// <summary><c>UNMAP_NOTIFY_CLEAR_BYTE</c>.</summary>
    public const uint UNMAP_NOTIFY_CLEAR_BYTE = 0x1;
    /// <summary><c>UNMAP_NOTIFY_SEND_EVENT</c>.</summary>
    public const uint UNMAP_NOTIFY_SEND_EVENT = 0x2;
}
