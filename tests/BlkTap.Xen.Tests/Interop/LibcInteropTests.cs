using System.Runtime.InteropServices;
using BlkTap.Linux;
using BlkTap.Linux.Internal;
using BlkTap.Linux.Interop;
using BlkTap.Xen;
using BlkTap.Xen.Internal;
using BlkTap.Xen.Interop;
using NUnit.Framework;

namespace BlkTap.Xen.Tests.Interop;

/// <summary>The libc wrappers and SafeHandles behave as the Xen classes rely on, on any Linux machine.</summary>
[TestFixture]
public class LibcInteropTests
{
    [Test]
    public void Open_MissingFile_ReturnsInvalidHandleAndErrnoBecomesNamedException()
    {
        using var fd = Libc.Open("/nonexistent/blktap-test", Libc.O_RDONLY);
        var ex = Errno.Exception("open", "/nonexistent/blktap-test");
        Assert.Multiple(() =>
        {
            Assert.That(fd.IsInvalid, Is.True);
            Assert.That(ex.Errno, Is.EqualTo(Errno.ENOENT));
            Assert.That(ex.Call, Is.EqualTo("open"));
            Assert.That(ex.Message, Is.EqualTo("open failed for /nonexistent/blktap-test: errno 2 (No such file or directory)"));
        });
    }

    [Test]
    public unsafe void Ioctl_OnRegularDevice_FailsWithENOTTY()
    {
        using var fd = Libc.Open("/dev/null", Libc.O_RDWR);
        Assert.That(fd.IsInvalid, Is.False);
        var unmap = new IoctlGntdevUnmapGrantRef { Index = 0, Count = 1 };
        int rc = Libc.Ioctl(fd, GntdevIoctls.IOCTL_GNTDEV_UNMAP_GRANT_REF, &unmap);
        int errno = Errno.Last;
        Assert.That(rc, Is.EqualTo(-1));
        Assert.That(errno, Is.EqualTo(25), "ENOTTY: /dev/null has no ioctls");
    }

    [FsCheck.NUnit.Property(MaxTest = 30)]
    public bool WriteThenRead_ThroughPipe_RoundTripsBytes(byte[] payload)
    {
        if (payload.Length == 0 || payload.Length > 4096) return true;
        var (r, w) = Libc.Pipe();
        using (r)
        using (w)
        {
            if (Libc.Write(w, payload) != payload.Length) return false;
            var back = new byte[payload.Length];
            int n = Libc.Read(r, back);
            return n == payload.Length && back.AsSpan().SequenceEqual(payload);
        }
    }

    [Test]
    public void Poll_WakePipe_ReportsReadableOnlyAfterSignal()
    {
        using var wake = new WakePipe();
        Span<PollFd> fds = [new PollFd { Fd = wake.ReadEnd.Fd, Events = Libc.POLLIN }];
        Assert.That(Libc.Poll(fds, 0), Is.EqualTo(0), "nothing signalled yet");
        wake.Signal();
        wake.Signal();
        fds[0].Revents = 0;
        Assert.That(Libc.Poll(fds, 1000), Is.EqualTo(1));
        Assert.That(fds[0].Revents & Libc.POLLIN, Is.EqualTo(Libc.POLLIN));
        wake.Drain();
        fds[0].Revents = 0;
        Assert.That(Libc.Poll(fds, 0), Is.EqualTo(0), "drained");
    }

    [Test]
    public unsafe void EpollWait_ReadyEventfd_ReturnsEventsAndAll64DataBits()
    {
        using var epoll = Libc.EpollCreate1();
        using var efd = Libc.Eventfd(Libc.EFD_NONBLOCK);
        Assert.That(epoll.IsInvalid || efd.IsInvalid, Is.False);
        const ulong data = 0x0123_4567_89AB_CDEF;
        Assert.That(Libc.EpollCtl(epoll, Libc.EPOLL_CTL_ADD, efd.Fd, Libc.EPOLLIN, data), Is.Zero);
        var events = new EpollEvent[2];
        fixed (EpollEvent* p = events)
        {
            Assert.That(Libc.EpollWait(epoll, p, events.Length, 0), Is.Zero, "counter is 0: not readable");
            Assert.That(Libc.Write(efd, BitConverter.GetBytes(5UL)), Is.EqualTo(8));
            Assert.That(Libc.EpollWait(epoll, p, events.Length, 1000), Is.EqualTo(1));
        }
        Assert.That(events[0].Data, Is.EqualTo(data), "the kernel wrote data at the offset EpollEvent reads it from");
        Assert.That(events[0].Events, Is.EqualTo(Libc.EPOLLIN));
        var counter = new byte[8];
        Assert.That(Libc.Read(efd, counter), Is.EqualTo(8));
        Assert.That(BitConverter.ToUInt64(counter), Is.EqualTo(5UL));
        Assert.That(Libc.Read(efd, counter), Is.EqualTo(-1));
        Assert.That(Errno.Last, Is.EqualTo(Errno.EAGAIN), "non-blocking, and the read reset the counter");
    }

    [Test]
    public void EpollCtl_DeleteUnwatchedDescriptor_FailsWithENOENT()
    {
        using var epoll = Libc.EpollCreate1();
        using var efd = Libc.Eventfd(0);
        Assert.That(Libc.EpollCtl(epoll, Libc.EPOLL_CTL_DEL, efd.Fd, 0, 0), Is.EqualTo(-1));
        Assert.That(Errno.Last, Is.EqualTo(Errno.ENOENT));
    }

    [Test]
    public unsafe void Mmap_SharedFile_SeesWritesAndUnmapsOnDispose()
    {
        var path = Path.Combine(Path.GetTempPath(), $"blktap-mmap-{Guid.NewGuid():N}");
        try
        {
            File.WriteAllBytes(path, new byte[8192]);
            using var fd = Libc.Open(path, Libc.O_RDWR);
            var map = Libc.Mmap(8192, Libc.PROT_READ | Libc.PROT_WRITE, Libc.MAP_SHARED, fd, 4096);
            Assert.That(map.IsInvalid, Is.False);
            ((byte*)map.Address)[7] = 0x5A;
            map.Dispose();
            Assert.That(map.IsClosed, Is.True);
            // The second page of the file now holds the byte; the mapping (offset 4096, but the file is 8192 long)
            // shows that the offset argument reached mmap intact.
            Assert.That(File.ReadAllBytes(path)[4096 + 7], Is.EqualTo(0x5A));
        }
        finally { File.Delete(path); }
    }

    [Test]
    public void Mmap_BadOffset_ReturnsInvalidHandleWithEINVAL()
    {
        using var fd = Libc.Open("/dev/zero", Libc.O_RDWR);
        using var map = Libc.Mmap(4096, Libc.PROT_READ, Libc.MAP_SHARED, fd, 1); // not page aligned
        Assert.That(map.IsInvalid, Is.True);
        Assert.That(Errno.Last, Is.EqualTo(Errno.EINVAL));
    }

    [Test]
    public void SafeFdHandle_Dispose_ClosesDescriptor()
    {
        var fd = Libc.Open("/dev/null", Libc.O_RDONLY);
        int raw = fd.Fd;
        fd.Dispose();
        Assert.That(Directory.Exists($"/proc/self/fd/{raw}") || File.Exists($"/proc/self/fd/{raw}"), Is.False);
    }

    [Test]
    public void XenInteropException_CarriesStrerrorText()
    {
        var ex = new XenInteropException("xs_read", Errno.EACCES, "/local/domain/0/name");
        Assert.That(ex.ErrorText, Is.EqualTo(Marshal.GetPInvokeErrorMessage(Errno.EACCES)));
        Assert.That(ex.Message, Does.Contain("xs_read failed for /local/domain/0/name: errno 13 (Permission denied)"));
    }

    [Test]
    public void Exception_LinuxCall_IsLinuxInteropExceptionWithStrerrorText()
    {
        var ex = Errno.Exception("epoll_ctl(EPOLL_CTL_ADD)", Errno.EBADF, "descriptor 7");
        Assert.That(ex, Is.InstanceOf<IOException>().And.Not.InstanceOf<XenInteropException>());
        Assert.That(ex.Message, Is.EqualTo($"epoll_ctl(EPOLL_CTL_ADD) failed for descriptor 7: errno 9 ({Marshal.GetPInvokeErrorMessage(Errno.EBADF)})"));
    }

    [TestCase(-Errno.EAGAIN, "EAGAIN")]
    [TestCase(-32, "EPIPE (the peer closed the connection)")]
    [TestCase(-104, "ECONNRESET (the peer reset the connection)")]
    [TestCase(-5, "errno 5")]
    public void Describe_NegativeResult_NamesTheErrno(long result, string expected) =>
        Assert.That(NonBlockingIo.Describe(result), Is.EqualTo(expected));

    [Test]
    public void SyncDirectory_ExistingDirectory_Succeeds()
    {
        var dir = Directory.CreateTempSubdirectory("blktap-sync-").FullName;
        try
        {
            File.WriteAllText(Path.Combine(dir, "f"), "x");
            Assert.DoesNotThrow(() => BlkTap.Linux.FileDurability.SyncDirectory(dir));
        }
        finally { Directory.Delete(dir, true); }
    }

    [Test]
    public void SyncDirectory_MissingOrNotADirectory_ThrowsNamingIt()
    {
        var missing = Path.Combine(Path.GetTempPath(), $"blktap-nope-{Guid.NewGuid():N}");
        Assert.That(() => BlkTap.Linux.FileDurability.SyncDirectory(missing),
            Throws.InstanceOf<IOException>().With.Message.Contains(missing).And.Message.Contains("errno 2"));
        var file = Path.GetTempFileName();
        try
        {
            // O_DIRECTORY refuses a regular file (ENOTDIR = 20).
            Assert.That(() => BlkTap.Linux.FileDurability.SyncDirectory(file), Throws.InstanceOf<IOException>().With.Message.Contains("errno 20"));
        }
        finally { File.Delete(file); }
    }
}
