using BlkTap.Linux.Internal;
using BlkTap.Linux.Interop;
using BlkTap.Xen.Interop;

namespace BlkTap.Xen.Internal;

/// <summary>The 2005 <c>/dev/blktap</c> character device through open/mmap/ioctl/poll.</summary>
/// <remarks>Threading: see <see cref="IBlktapDeviceIo"/>. Never met a real kernel in this project's tests.</remarks>
internal sealed class LinuxBlktapDeviceIo : IBlktapDeviceIo
{
    private readonly SafeFdHandle _fd;
    private readonly WakePipe _wake = new();
    private SafeMmapHandle? _mapping;

    public LinuxBlktapDeviceIo(string path)
    {
        XenPlatform.RequireDevice(path, "blktap");
        _fd = Libc.Open(path, Libc.O_RDWR);
        if (_fd.IsInvalid)
        {
            // NOTE: the 2005 driver allows one opener; a second open fails (EBUSY) while a tap runs.
            var ex = XenErrno.Exception("open", path);
            _fd.Dispose();
            _wake.Dispose();
            throw ex;
        }
    }

    public nint Map(long length)
    {
        var mapping = Libc.Mmap((nuint)length, Libc.PROT_READ | Libc.PROT_WRITE, Libc.MAP_SHARED, _fd, 0);
        if (mapping.IsInvalid) throw XenErrno.Exception("mmap", "/dev/blktap");
        _mapping = mapping;
        return mapping.Address;
    }

    public unsafe int Ioctl(uint command, nuint argument)
    {
        // NOTE: the 2005 driver takes the mode (SETMODE) as the ioctl's integer argument, not a pointer.
        return Libc.Ioctl(_fd, command, (void*)argument) < 0 ? Errno.Last : 0;
    }

    public bool WaitForEvents(int timeoutMs)
    {
        bool added = false, addedWake = false;
        _fd.DangerousAddRef(ref added);
        _wake.ReadEnd.DangerousAddRef(ref addedWake);
        try
        {
            Span<PollFd> fds = stackalloc PollFd[2];
            fds[0] = new PollFd { Fd = _fd.Fd, Events = Libc.POLLIN };
            fds[1] = new PollFd { Fd = _wake.ReadEnd.Fd, Events = Libc.POLLIN };
            int rc = Libc.Poll(fds, timeoutMs);
            if (rc < 0) throw XenErrno.Exception("poll", "/dev/blktap");
            if (fds[1].Revents != 0) { _wake.Drain(); return false; }
            if ((fds[0].Revents & (Libc.POLLERR | Libc.POLLHUP | Libc.POLLNVAL)) != 0)
                throw new XenInteropException("poll", Errno.EIO, "/dev/blktap reported an error condition");
            return (fds[0].Revents & Libc.POLLIN) != 0;
        }
        finally
        {
            if (addedWake) _wake.ReadEnd.DangerousRelease();
            if (added) _fd.DangerousRelease();
        }
    }

    public void Wake() => _wake.Signal();

    public void Dispose()
    {
        _mapping?.Dispose();
        _fd.Dispose();
        _wake.Dispose();
    }
}
