using BlkTap.Linux.Interop;

namespace BlkTap.Linux;

/// <summary>
/// read(2) and writev(2) on a non-blocking descriptor (a socket a loop polls), without exceptions: results are byte
/// counts, or a negative errno (<see cref="WouldBlock"/> when the call would block). Linux only.
/// <para>Threading: stateless; the caller keeps the descriptor open during a call and serialises calls per direction.</para>
/// </summary>
public static class NonBlockingIo
{
    /// <summary>The result when no data is ready or no room is left (-EAGAIN).</summary>
    public const int WouldBlock = -Errno.EAGAIN;

    /// <summary>Reads up to <paramref name="buffer"/>.Length bytes. Returns the count, 0 at end of stream, or -errno.</summary>
    public static unsafe int Read(int fd, Span<byte> buffer)
    {
        fixed (byte* p = buffer)
        {
            nint rc = Libc.ReadFd(fd, p, (nuint)buffer.Length);
            return rc >= 0 ? (int)rc : -Errno.Last;
        }
    }

    /// <summary>Reads up to <paramref name="length"/> bytes into native memory at <paramref name="address"/>.</summary>
    public static unsafe int Read(int fd, nint address, int length)
    {
        nint rc = Libc.ReadFd(fd, (byte*)address, (nuint)length);
        return rc >= 0 ? (int)rc : -Errno.Last;
    }

    /// <summary>Writes the segments in order with one writev(2). Returns the bytes written (possibly fewer than asked), or -errno.</summary>
    public static unsafe long WriteGather(int fd, ReadOnlySpan<IoSegment> segments)
    {
        // NOTE: IoSegment has struct iovec's layout (<sys/uio.h>: void *iov_base; size_t iov_len), so the span is passed as is.
        fixed (IoSegment* p = segments)
        {
            nint rc = Libc.Writev(fd, (IoVec*)p, segments.Length);
            return rc >= 0 ? rc : -Errno.Last;
        }
    }

    /// <summary>
    /// Sends <paramref name="count"/> bytes of <paramref name="file"/> from <paramref name="offset"/> with one
    /// sendfile(2): the page cache's pages go to the socket by reference, with no copy through user memory. Returns the
    /// bytes sent (possibly fewer than asked), 0 when the file ends at <paramref name="offset"/>, or -errno.
    /// </summary>
    /// <remarks>
    /// A file on a disk may make the call wait for the disk even on a non-blocking socket; callers on a loop use it only
    /// for files in memory (<see cref="Storage.LinuxStorageFile.InMemory"/>). The caller keeps <paramref name="file"/>
    /// open during the call (a <see cref="Microsoft.Win32.SafeHandles.SafeFileHandle"/> is also referenced by the call itself).
    /// </remarks>
    public static long SendFile(int socket, Microsoft.Win32.SafeHandles.SafeFileHandle file, long offset, int count) =>
        Libc.Sendfile(socket, file, offset, (nuint)count);

    /// <summary>The system's name for a negative result (for example "EPIPE (the peer closed the connection)" or "errno 5").</summary>
    public static string Describe(long result) => Errno.Describe(-result);
}
