using System.Runtime.InteropServices;

namespace BlkTap.Linux.Interop;

/// <summary>
/// struct io_uring_sqe (linux/io_uring.h), 64 bytes, with only the members a read or write uses named (the header's
/// unions are the same bytes under other names).
/// </summary>
// NOTE: linux/io_uring.h: opcode at 0, flags 1, ioprio 2, fd 4, off (union addr2) 8, addr (union splice_off_in) 16,
// len 24, rw_flags (union of the op flags) 28, user_data 32, buf_index (packed union) 40, personality 42,
// splice_fd_in (union file_index) 44, addr3 48, __pad2[1] 56.
[StructLayout(LayoutKind.Sequential, Size = 64)]
internal struct IoUringSqe
{
    public byte Opcode;
    public byte Flags;
    public ushort Ioprio;
    public int Fd;
    public ulong Off;
    public ulong Addr;
    public uint Len;
    public uint RwFlags;
    public ulong UserData;
    public ushort BufIndex;
    public ushort Personality;
    public int SpliceFdIn;
    public ulong Addr3;
    public ulong Pad2;
}

/// <summary>struct io_uring_cqe (linux/io_uring.h) without the big-CQE tail (rings set up without IORING_SETUP_CQE32), 16 bytes.</summary>
// NOTE: linux/io_uring.h: user_data __u64 at 0, res __s32 at 8 (bytes done, or minus the errno), flags __u32 at 12.
[StructLayout(LayoutKind.Sequential)]
internal struct IoUringCqe
{
    public ulong UserData;
    public int Res;
    public uint Flags;
}
