using System.Runtime.InteropServices;

namespace BlkTap.Xen.Interop;

// NOTE: every struct in this file mirrors Linux include/uapi/xen/gntalloc.h (Debian linux-libc-dev
// /usr/include/xen/gntalloc.h; libxen-dev's /usr/include/xen/sys/gntalloc.h is the same ABI). The ABI tests compare
// every size and offset with gcc's view of that header.

/// <summary>
/// <c>struct ioctl_gntalloc_alloc_gref</c>: domid @0 (u16), flags @2 (u16), count @4, index @8 (out: the mmap
/// offset), gref_ids[1] @16 (out); 24 bytes.
/// </summary>
/// <remarks>
/// NOTE: gntalloc.h declares <c>gref_ids[1]</c> but the kernel writes <c>count</c> entries there: the caller
/// allocates <c>max(sizeof, offsetof(gref_ids) + count * 4)</c> bytes; <see cref="GrefIds"/> is only the first
/// element. The members add up to 20 bytes; the u64 <c>index</c> aligns the struct to 8, so sizeof is 24 (4 bytes
/// of tail padding), and drivers/xen/gntalloc.c copies all 24 back, so even one page needs the 24-byte buffer.
/// </remarks>
[StructLayout(LayoutKind.Sequential)]
internal struct IoctlGntallocAllocGref
{
    public ushort Domid;
    public ushort Flags;
    public uint Count;
    public ulong Index;
    public uint GrefIds;
}

/// <summary><c>struct ioctl_gntalloc_dealloc_gref</c>: index @0, count @8; 16 bytes.</summary>
/// <remarks>NOTE: gntalloc.h declares no pad member; the u64 <c>index</c> makes sizeof 16 (4 bytes of tail padding),
/// which is the size encoded in IOCTL_GNTALLOC_DEALLOC_GREF.</remarks>
[StructLayout(LayoutKind.Sequential)]
internal struct IoctlGntallocDeallocGref
{
    public ulong Index;
    public uint Count;
}
