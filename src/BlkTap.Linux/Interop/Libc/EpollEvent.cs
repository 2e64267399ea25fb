using System.Runtime.InteropServices;

namespace BlkTap.Linux.Interop;

/// <summary><c>struct epoll_event</c> from &lt;sys/epoll.h&gt; on x86_64: events @0, data @4; 12 bytes.</summary>
// NOTE: x86_64 glibc bits/epoll.h defines __EPOLL_PACKED as __attribute__ ((__packed__)) and sys/epoll.h applies it
// to struct epoll_event (the kernel's uapi linux/eventpoll.h does the same with EPOLL_PACKED), so that the 64-bit
// layout equals the i386 one: 12 bytes, the 64-bit data at offset 4. Every other architecture (aarch64 included)
// aligns data to 8: 16 bytes, data at 8. Only the x86_64 layout is modelled; EpollLoopWaiter.IsSupported refuses
// the others.
[StructLayout(LayoutKind.Sequential, Pack = 4)]
internal struct EpollEvent
{
    /// <summary>EPOLLIN, EPOLLOUT, ... (<c>uint32_t events</c>).</summary>
    public uint Events;

    /// <summary>The <c>u64</c> member of the <c>epoll_data_t</c> union: the caller's token.</summary>
    public ulong Data;
}
