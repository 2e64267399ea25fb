using System.Runtime.InteropServices;

namespace BlkTap.Linux.Interop;

/// <summary>
/// <c>struct msghdr</c> from &lt;sys/socket.h&gt; on LP64: msg_name @0, msg_namelen @8 (socklen_t), msg_iov @16,
/// msg_iovlen @24 (size_t), msg_control @32, msg_controllen @40 (size_t), msg_flags @48; 56 bytes.
/// </summary>
[StructLayout(LayoutKind.Sequential)]
internal struct MsgHdr
{
    public nint Name;
    public uint NameLength;
    public nint Iov;
    public nuint IovLength;
    public nint Control;
    public nuint ControlLength;
    public int Flags;
}

/// <summary>
/// <c>struct cmsghdr</c> from &lt;sys/socket.h&gt; on LP64: cmsg_len @0 (size_t), cmsg_level @8, cmsg_type @12;
/// the data follows at 16 (CMSG_DATA), so CMSG_LEN(4) is 20 and CMSG_SPACE(4) is 24.
/// </summary>
[StructLayout(LayoutKind.Sequential)]
internal struct CmsgHdr
{
    public nuint Length;
    public int Level;
    public int Type;
}

internal static partial class Libc
{
    [LibraryImport(Libraries.Libc, EntryPoint = "sendmsg", SetLastError = true)]
    private static unsafe partial nint SendmsgRaw(int fd, MsgHdr* message, int flags);

    /// <summary>sendmsg(2), retried on EINTR. Returns the byte count or -1 on failure (errno set).</summary>
    public static unsafe nint Sendmsg(int fd, MsgHdr* message, int flags)
    {
        nint rc;
        do rc = SendmsgRaw(fd, message, flags);
        while (rc == -1 && Errno.Last == Errno.EINTR);
        return rc;
    }
}
