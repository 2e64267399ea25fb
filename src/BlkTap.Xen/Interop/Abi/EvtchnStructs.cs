using System.Runtime.InteropServices;

namespace BlkTap.Xen.Interop;

// NOTE: every struct here mirrors Linux include/uapi/xen/evtchn.h (Debian linux-libc-dev /usr/include/xen/evtchn.h).
// `unsigned int` is 32 bits on every Linux ABI we support.

/// <summary><c>struct ioctl_evtchn_bind_virq</c>: virq @0; 4 bytes.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct IoctlEvtchnBindVirq
{
    public uint Virq;
}

/// <summary><c>struct ioctl_evtchn_bind_interdomain</c>: remote_domain @0, remote_port @4; 8 bytes.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct IoctlEvtchnBindInterdomain
{
    public uint RemoteDomain;
    public uint RemotePort;
}

/// <summary><c>struct ioctl_evtchn_bind_unbound_port</c>: remote_domain @0; 4 bytes.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct IoctlEvtchnBindUnboundPort
{
    public uint RemoteDomain;
}

/// <summary><c>struct ioctl_evtchn_unbind</c>: port @0; 4 bytes.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct IoctlEvtchnUnbind
{
    public uint Port;
}

/// <summary><c>struct ioctl_evtchn_notify</c>: port @0; 4 bytes.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct IoctlEvtchnNotify
{
    public uint Port;
}

/// <summary><c>struct ioctl_evtchn_restrict_domid</c>: domid @0 (domid_t, 16 bits); 2 bytes.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct IoctlEvtchnRestrictDomid
{
    public ushort Domid;
}
