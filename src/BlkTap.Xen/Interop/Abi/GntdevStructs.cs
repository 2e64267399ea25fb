using System.Runtime.InteropServices;

namespace BlkTap.Xen.Interop;

// NOTE: every struct in this file mirrors Linux include/uapi/xen/gntdev.h (Debian linux-libc-dev
// /usr/include/xen/gntdev.h; libxen-dev's /usr/include/xen/sys/gntdev.h is the same ABI). The ABI tests compare
// every size and offset with gcc's view of those headers.

/// <summary><c>struct ioctl_gntdev_grant_ref</c>: domid @0, ref @4; 8 bytes.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct IoctlGntdevGrantRef
{
    public uint Domid;
    public uint Ref;
}

/// <summary>
/// <c>struct ioctl_gntdev_map_grant_ref</c>: count @0, pad @4, index @8 (out: the mmap offset), refs[1] @16; 24 bytes.
/// </summary>
/// <remarks>NOTE: gntdev.h declares <c>refs[1]</c> but reads <c>count</c> entries: the caller allocates
/// <c>offsetof(refs) + count * 8</c> bytes; <see cref="Refs"/> is only the first element.</remarks>
[StructLayout(LayoutKind.Sequential)]
internal struct IoctlGntdevMapGrantRef
{
    public uint Count;
    public uint Pad;
    public ulong Index;
    public IoctlGntdevGrantRef Refs;
}

/// <summary><c>struct ioctl_gntdev_unmap_grant_ref</c>: index @0, count @8, pad @12; 16 bytes.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct IoctlGntdevUnmapGrantRef
{
    public ulong Index;
    public uint Count;
    public uint Pad;
}

/// <summary><c>struct ioctl_gntdev_get_offset_for_vaddr</c>: vaddr @0, offset @8, count @16, pad @20; 24 bytes.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct IoctlGntdevGetOffsetForVaddr
{
    public ulong Vaddr;
    public ulong Offset;
    public uint Count;
    public uint Pad;
}

/// <summary><c>struct ioctl_gntdev_set_max_grants</c>: count @0; 4 bytes.</summary>
/// <remarks>NOTE: modern kernels (Linux 4.x+ gntdev.c) no longer implement this ioctl (limit is the
/// module parameter limit); kept for ABI completeness, never called.</remarks>
[StructLayout(LayoutKind.Sequential)]
internal struct IoctlGntdevSetMaxGrants
{
    public uint Count;
}

/// <summary><c>struct ioctl_gntdev_unmap_notify</c>: index @0, action @8, event_channel_port @12; 16 bytes.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct IoctlGntdevUnmapNotify
{
    public ulong Index;
    public uint Action;
    public uint EventChannelPort;
}

/// <summary>
/// The union inside <c>struct gntdev_grant_copy_segment</c>: either a local <c>void *virt</c>, or
/// <c>foreign { grant_ref_t ref; __u16 offset; domid_t domid; }</c>; 8 bytes on 64-bit.
/// </summary>
[StructLayout(LayoutKind.Explicit)]
internal struct GntdevCopyPtr
{
    /// <summary>A local address (when the matching GNTCOPY_*_gref flag is clear).</summary>
    [FieldOffset(0)] public nint Virt;
    /// <summary>foreign.ref.</summary>
    [FieldOffset(0)] public uint Ref;
    /// <summary>foreign.offset: byte offset within the granted page.</summary>
    [FieldOffset(4)] public ushort Offset;
    /// <summary>foreign.domid.</summary>
    [FieldOffset(6)] public ushort Domid;
}

/// <summary>
/// <c>struct gntdev_grant_copy_segment</c> (and libxengnttab's identical <c>xengnttab_grant_copy_segment</c>):
/// source @0, dest @8, len @16, flags @18 (GNTCOPY_*), status @20 (GNTST_*, out); 24 bytes.
/// </summary>
[StructLayout(LayoutKind.Sequential)]
internal struct GntdevGrantCopySegment
{
    public GntdevCopyPtr Source;
    public GntdevCopyPtr Dest;
    public ushort Len;
    public ushort Flags;
    public short Status;
}

/// <summary><c>struct ioctl_gntdev_grant_copy</c>: count @0 (unsigned int), segments @8 (pointer); 16 bytes.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct IoctlGntdevGrantCopy
{
    public uint Count;
    public nint Segments;
}
