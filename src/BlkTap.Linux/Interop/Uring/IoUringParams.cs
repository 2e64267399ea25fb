using System.Runtime.InteropServices;

namespace BlkTap.Linux.Interop;

/// <summary>struct io_uring_params (linux/io_uring.h): io_uring_setup's in/out argument, 120 bytes.</summary>
// NOTE: linux/io_uring.h: seven __u32, __u32 resv[3], then struct io_sqring_offsets and struct io_cqring_offsets.
[StructLayout(LayoutKind.Sequential)]
internal struct IoUringParams
{
    public uint SqEntries;
    public uint CqEntries;
    public uint Flags;
    public uint SqThreadCpu;
    public uint SqThreadIdle;
    public uint Features;
    public uint WqFd;
    public uint Resv0;
    public uint Resv1;
    public uint Resv2;
    public IoSqringOffsets SqOff;
    public IoCqringOffsets CqOff;
}

/// <summary>struct io_sqring_offsets (linux/io_uring.h): where the submission ring's fields sit in its mapping, 40 bytes.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct IoSqringOffsets
{
    public uint Head;
    public uint Tail;
    public uint RingMask;
    public uint RingEntries;
    public uint Flags;
    public uint Dropped;
    public uint Array;
    public uint Resv1;
    public ulong Resv2; // NOTE: linux/io_uring.h: resv2 up to 6.4, user_addr from 6.5 (IORING_SETUP_NO_MMAP); unused here.
}

/// <summary>struct io_cqring_offsets (linux/io_uring.h): where the completion ring's fields sit in its mapping, 40 bytes.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct IoCqringOffsets
{
    public uint Head;
    public uint Tail;
    public uint RingMask;
    public uint RingEntries;
    public uint Overflow;
    public uint Cqes;
    public uint Flags;
    public uint Resv1;
    public ulong Resv2; // NOTE: linux/io_uring.h: resv2 up to 6.4, user_addr from 6.5 (IORING_SETUP_NO_MMAP); unused here.
}
