using System.Runtime.InteropServices;

namespace BlkTap.Linux.Interop;

/// <summary><c>struct pollfd</c> from &lt;poll.h&gt;: fd @0, events @4, revents @6; 8 bytes.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct PollFd
{
    public int Fd;
    public short Events;
    public short Revents;
}

internal static partial class Libc
{
    [LibraryImport(Libraries.Libc, EntryPoint = "poll", SetLastError = true)]
    private static unsafe partial int PollRaw(PollFd* fds, nuint count, int timeoutMs);

    /// <summary>
    /// poll(2), retried on EINTR (with the full timeout again). Returns the number of ready descriptors,
    /// 0 on timeout, -1 on failure (errno set).
    /// </summary>
    public static unsafe int Poll(Span<PollFd> fds, int timeoutMs)
    {
        fixed (PollFd* p = fds)
        {
            int rc;
            do rc = PollRaw(p, (nuint)fds.Length, timeoutMs);
            while (rc == -1 && Errno.Last == Errno.EINTR);
            return rc;
        }
    }
}
