using System.Runtime.CompilerServices;
using BlkTap.Linux.Interop;

namespace BlkTap.Xen.Interop;

/// <summary>The /dev/xen/evtchn ioctl requests.</summary>
/// <remarks>
/// NOTE: evtchn.h: <c>_IOC(_IOC_NONE, 'E', nr, sizeof(struct ...))</c>; IOCTL_EVTCHN_RESET has size 0.
/// Reading the device yields pending ports as 32-bit values (each now masked); writing 32-bit ports unmasks them
/// (Linux drivers/xen/evtchn.c).
/// </remarks>
internal static class EvtchnIoctls
{
    /// <summary>The device node.</summary>
    public const string DevicePath = "/dev/xen/evtchn";

    public static readonly uint IOCTL_EVTCHN_BIND_VIRQ =
        LinuxIoctl.Ioc(LinuxIoctl.IOC_NONE, 'E', 0, Unsafe.SizeOf<IoctlEvtchnBindVirq>());
    public static readonly uint IOCTL_EVTCHN_BIND_INTERDOMAIN =
        LinuxIoctl.Ioc(LinuxIoctl.IOC_NONE, 'E', 1, Unsafe.SizeOf<IoctlEvtchnBindInterdomain>());
    public static readonly uint IOCTL_EVTCHN_BIND_UNBOUND_PORT =
        LinuxIoctl.Ioc(LinuxIoctl.IOC_NONE, 'E', 2, Unsafe.SizeOf<IoctlEvtchnBindUnboundPort>());
    public static readonly uint IOCTL_EVTCHN_UNBIND =
        LinuxIoctl.Ioc(LinuxIoctl.IOC_NONE, 'E', 3, Unsafe.SizeOf<IoctlEvtchnUnbind>());
    public static readonly uint IOCTL_EVTCHN_NOTIFY =
        LinuxIoctl.Ioc(LinuxIoctl.IOC_NONE, 'E', 4, Unsafe.SizeOf<IoctlEvtchnNotify>());
    public static readonly uint IOCTL_EVTCHN_RESET =
        LinuxIoctl.Ioc(LinuxIoctl.IOC_NONE, 'E', 5, 0);
    public static readonly uint IOCTL_EVTCHN_RESTRICT_DOMID =
        LinuxIoctl.Ioc(LinuxIoctl.IOC_NONE, 'E', 6, Unsafe.SizeOf<IoctlEvtchnRestrictDomid>());
}
