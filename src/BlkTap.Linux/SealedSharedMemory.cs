using System.Net.Sockets;
using BlkTap.Linux.Interop;

namespace BlkTap.Linux;

/// <summary>
/// Shared memory whose size nobody can change: a memfd (memfd_create with MFD_ALLOW_SEALING) sized once, then
/// sealed with F_SEAL_SHRINK, F_SEAL_GROW and F_SEAL_SEAL, and mapped shared read-write into this process. Its
/// descriptor can be handed to another process over a Unix socket (<see cref="SendWithDescriptor"/>); that
/// process may map, read and write it, but a truncation (ftruncate, or open of /proc/PID/fd/N with O_TRUNC)
/// fails with EPERM, so this mapping can never fault with SIGBUS on a page past a shrunk end.
/// </summary>
/// <remarks>
/// Why a seal and not a check: a mapping of a file another process can truncate faults (SIGBUS, which kills a
/// .NET process) on the first touch of a page past the new end, and no check before an access closes that race;
/// Linux pins a file's size only through seals, which exist only for memfd (and hugetlbfs/tmpfs memfds).
/// Threading: <see cref="Create"/> and <see cref="Dispose"/> on one thread; <see cref="Address"/> and
/// <see cref="SendWithDescriptor"/> from any thread while the object is alive. The owner disposes it only when
/// nothing in this process still touches the pages.
/// </remarks>
public sealed class SealedSharedMemory : IDisposable
{
    // NOTE: linux/fcntl.h: these three seals together fix the size for good (F_SEAL_SEAL: no seal can be added or
    // removed later). F_SEAL_WRITE is not set: both sides write the pages.
    private const int SizeSeals = Libc.F_SEAL_SHRINK | Libc.F_SEAL_GROW | Libc.F_SEAL_SEAL;

    private readonly SafeFdHandle _fd;
    private readonly SafeMmapHandle _map;

    private SealedSharedMemory(SafeFdHandle fd, SafeMmapHandle map, long length)
    {
        _fd = fd;
        _map = map;
        Length = length;
        Address = map.Address;
    }

    /// <summary>The first byte of the mapping. Zero-filled at creation.</summary>
    public nint Address { get; }

    /// <summary>Bytes mapped, the memfd's size.</summary>
    public long Length { get; }

    /// <summary>The seals the kernel reports on the memfd (F_GET_SEALS): shrink, grow and seal.</summary>
    public int Seals => Libc.Fcntl(_fd, Libc.F_GET_SEALS, 0);

    /// <summary>
    /// Creates, sizes, seals and maps <paramref name="length"/> bytes (a positive multiple of the page size).
    /// <paramref name="name"/> shows in /proc/PID/fd as <c>memfd:NAME</c>. Throws <see cref="LinuxInteropException"/>
    /// naming the call that failed (ENOMEM, EMFILE...).
    /// </summary>
    public static SealedSharedMemory Create(string name, long length)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(length);
        var fd = Libc.MemfdCreate(name, Libc.MFD_CLOEXEC | Libc.MFD_ALLOW_SEALING);
        if (fd.IsInvalid) throw Errno.Exception("memfd_create", name);
        try
        {
            int errno = Libc.Ftruncate(fd, length);
            if (errno != 0) throw Errno.Exception("ftruncate", errno, $"memfd:{name} to {length} bytes");
            if (Libc.Fcntl(fd, Libc.F_ADD_SEALS, SizeSeals) == -1) throw Errno.Exception("fcntl(F_ADD_SEALS)", $"memfd:{name}");
            var map = Libc.Mmap((nuint)length, Libc.PROT_READ | Libc.PROT_WRITE, Libc.MAP_SHARED, fd, 0);
            if (map.IsInvalid) throw Errno.Exception("mmap", $"memfd:{name}, {length} bytes");
            return new SealedSharedMemory(fd, map, length);
        }
        catch
        {
            fd.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Sends <paramref name="bytes"/> on <paramref name="socket"/> (a connected Unix stream socket) with this
    /// memory's descriptor attached as SCM_RIGHTS to the first byte, in one sendmsg without SIGPIPE. Returns the
    /// bytes sent; throws <see cref="LinuxInteropException"/> (an <see cref="IOException"/>) when sendmsg fails.
    /// </summary>
    public unsafe int SendWithDescriptor(Socket socket, ReadOnlySpan<byte> bytes)
    {
        ArgumentNullException.ThrowIfNull(socket);
        if (bytes.IsEmpty) throw new ArgumentException("SCM_RIGHTS needs at least one data byte", nameof(bytes));
        // NOTE: sys/socket.h: CMSG_SPACE(sizeof(int)) is 24 on LP64 (16-byte header, data aligned to 8);
        // CMSG_LEN(sizeof(int)) is 20.
        byte* control = stackalloc byte[24];
        new Span<byte>(control, 24).Clear();
        var header = (CmsgHdr*)control;
        header->Length = (nuint)(sizeof(CmsgHdr) + sizeof(int));
        header->Level = Libc.SOL_SOCKET;
        header->Type = Libc.SCM_RIGHTS;
        bool added = false;
        try
        {
            _fd.DangerousAddRef(ref added);
            *(int*)(control + sizeof(CmsgHdr)) = _fd.Fd;
            fixed (byte* data = bytes)
            {
                var iov = new IoVec { Base = (nint)data, Length = (nuint)bytes.Length };
                var message = new MsgHdr { Iov = (nint)(&iov), IovLength = 1, Control = (nint)control, ControlLength = 24 };
                nint sent = Libc.Sendmsg((int)socket.Handle, &message, Libc.MSG_NOSIGNAL);
                if (sent < 0) throw Errno.Exception("sendmsg", "SCM_RIGHTS");
                return (int)sent;
            }
        }
        finally
        {
            if (added) _fd.DangerousRelease();
        }
    }

    /// <summary>Unmaps the memory and closes the descriptor (a process it was sent to keeps its own).</summary>
    public void Dispose()
    {
        _map.Dispose();
        _fd.Dispose();
    }
}
