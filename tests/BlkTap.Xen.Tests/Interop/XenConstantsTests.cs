using System.Text.RegularExpressions;
using BlkTap.Linux.Interop;
using BlkTap.Xen.Interop;
using NUnit.Framework;

namespace BlkTap.Xen.Tests.Interop;

/// <summary>
/// Proves every ioctl number and constant the Xen layer uses against the installed C headers, and the
/// existing <see cref="XenbusState"/> and <see cref="BlkifProtocolNames"/> against xenbus.h / protocols.h.
/// </summary>
[TestFixture]
public class XenConstantsTests
{
    public sealed record Constant(string C, long CSharp)
    {
        public override string ToString() => C;
    }

    internal static readonly Constant[] Constants =
    [
        // gntdev.h
        new("IOCTL_GNTDEV_MAP_GRANT_REF", GntdevIoctls.IOCTL_GNTDEV_MAP_GRANT_REF),
        new("IOCTL_GNTDEV_UNMAP_GRANT_REF", GntdevIoctls.IOCTL_GNTDEV_UNMAP_GRANT_REF),
        new("IOCTL_GNTDEV_GET_OFFSET_FOR_VADDR", GntdevIoctls.IOCTL_GNTDEV_GET_OFFSET_FOR_VADDR),
        new("IOCTL_GNTDEV_SET_MAX_GRANTS", GntdevIoctls.IOCTL_GNTDEV_SET_MAX_GRANTS),
        new("IOCTL_GNTDEV_SET_UNMAP_NOTIFY", GntdevIoctls.IOCTL_GNTDEV_SET_UNMAP_NOTIFY),
        new("IOCTL_GNTDEV_GRANT_COPY", GntdevIoctls.IOCTL_GNTDEV_GRANT_COPY),
        new("UNMAP_NOTIFY_CLEAR_BYTE", GntdevIoctls.UNMAP_NOTIFY_CLEAR_BYTE),
        new("UNMAP_NOTIFY_SEND_EVENT", GntdevIoctls.UNMAP_NOTIFY_SEND_EVENT),
        // evtchn.h
        new("IOCTL_EVTCHN_BIND_VIRQ", EvtchnIoctls.IOCTL_EVTCHN_BIND_VIRQ),
        new("IOCTL_EVTCHN_BIND_INTERDOMAIN", EvtchnIoctls.IOCTL_EVTCHN_BIND_INTERDOMAIN),
        new("IOCTL_EVTCHN_BIND_UNBOUND_PORT", EvtchnIoctls.IOCTL_EVTCHN_BIND_UNBOUND_PORT),
        new("IOCTL_EVTCHN_UNBIND", EvtchnIoctls.IOCTL_EVTCHN_UNBIND),
        new("IOCTL_EVTCHN_NOTIFY", EvtchnIoctls.IOCTL_EVTCHN_NOTIFY),
        new("IOCTL_EVTCHN_RESET", EvtchnIoctls.IOCTL_EVTCHN_RESET),
        new("IOCTL_EVTCHN_RESTRICT_DOMID", EvtchnIoctls.IOCTL_EVTCHN_RESTRICT_DOMID),
        // asm-generic/ioctl.h
        new("_IOC_NONE", LinuxIoctl.IOC_NONE),
        new("_IOC_WRITE", LinuxIoctl.IOC_WRITE),
        new("_IOC_READ", LinuxIoctl.IOC_READ),
        // grant_table.h
        new("GNTST_okay", GrantTableConstants.GNTST_okay),
        new("GNTST_general_error", GrantTableConstants.GNTST_general_error),
        new("GNTST_bad_domain", GrantTableConstants.GNTST_bad_domain),
        new("GNTST_bad_gntref", GrantTableConstants.GNTST_bad_gntref),
        new("GNTST_bad_handle", GrantTableConstants.GNTST_bad_handle),
        new("GNTST_bad_virt_addr", GrantTableConstants.GNTST_bad_virt_addr),
        new("GNTST_bad_dev_addr", GrantTableConstants.GNTST_bad_dev_addr),
        new("GNTST_no_device_space", GrantTableConstants.GNTST_no_device_space),
        new("GNTST_permission_denied", GrantTableConstants.GNTST_permission_denied),
        new("GNTST_bad_page", GrantTableConstants.GNTST_bad_page),
        new("GNTST_bad_copy_arg", GrantTableConstants.GNTST_bad_copy_arg),
        new("GNTST_address_too_big", GrantTableConstants.GNTST_address_too_big),
        new("GNTST_eagain", GrantTableConstants.GNTST_eagain),
        new("GNTST_no_space", GrantTableConstants.GNTST_no_space),
        new("GNTCOPY_source_gref", GrantTableConstants.GNTCOPY_source_gref),
        new("GNTCOPY_dest_gref", GrantTableConstants.GNTCOPY_dest_gref),
        // xs_wire.h, xenstore.h, xenstore_lib.h
        new("XS_WATCH_PATH", XsWire.XS_WATCH_PATH),
        new("XS_WATCH_TOKEN", XsWire.XS_WATCH_TOKEN),
        new("XBT_NULL", XenStoreLib.XBT_NULL),
        new("XS_OPEN_READONLY", (long)XenStoreLib.XS_OPEN_READONLY),
        new("XS_OPEN_SOCKETONLY", (long)XenStoreLib.XS_OPEN_SOCKETONLY),
        new("XS_UNWATCH_FILTER", (long)XenStoreLib.XS_UNWATCH_FILTER),
        new("XS_PERM_NONE", (long)BlkTap.Xen.XenStoreAccess.None),
        new("XS_PERM_READ", (long)BlkTap.Xen.XenStoreAccess.Read),
        new("XS_PERM_WRITE", (long)BlkTap.Xen.XenStoreAccess.Write),
        // xenevtchn.h
        new("XENEVTCHN_NO_CLOEXEC", EvtchnLib.XENEVTCHN_NO_CLOEXEC),
        // libc
        new("O_RDONLY", Libc.O_RDONLY),
        new("O_RDWR", Libc.O_RDWR),
        new("O_NONBLOCK", Libc.O_NONBLOCK),
        new("O_CLOEXEC", Libc.O_CLOEXEC),
        new("O_DIRECTORY", Libc.O_DIRECTORY),
        new("PROT_NONE", Libc.PROT_NONE),
        new("PROT_READ", Libc.PROT_READ),
        new("PROT_WRITE", Libc.PROT_WRITE),
        new("MAP_SHARED", Libc.MAP_SHARED),
        new("MAP_PRIVATE", Libc.MAP_PRIVATE),
        new("MAP_ANONYMOUS", Libc.MAP_ANONYMOUS),
        new("MADV_DONTNEED", Libc.MADV_DONTNEED),
        new("MADV_HUGEPAGE", Libc.MADV_HUGEPAGE),
        new("(intptr_t)MAP_FAILED", Libc.MAP_FAILED),
        // sys/mman.h, fcntl.h, sys/socket.h (the shmring server's sealed memfd and SCM_RIGHTS)
        new("MFD_CLOEXEC", Libc.MFD_CLOEXEC),
        new("MFD_ALLOW_SEALING", Libc.MFD_ALLOW_SEALING),
        new("F_ADD_SEALS", Libc.F_ADD_SEALS),
        new("F_GET_SEALS", Libc.F_GET_SEALS),
        new("F_SEAL_SEAL", Libc.F_SEAL_SEAL),
        new("F_SEAL_SHRINK", Libc.F_SEAL_SHRINK),
        new("F_SEAL_GROW", Libc.F_SEAL_GROW),
        new("SOL_SOCKET", Libc.SOL_SOCKET),
        new("SCM_RIGHTS", Libc.SCM_RIGHTS),
        new("MSG_NOSIGNAL", Libc.MSG_NOSIGNAL),
        new("POLLIN", Libc.POLLIN),
        new("POLLERR", Libc.POLLERR),
        new("POLLHUP", Libc.POLLHUP),
        new("POLLNVAL", Libc.POLLNVAL),
        // sys/epoll.h, sys/eventfd.h
        new("EPOLLIN", Libc.EPOLLIN),
        new("EPOLLOUT", Libc.EPOLLOUT),
        new("EPOLLERR", Libc.EPOLLERR),
        new("EPOLLHUP", Libc.EPOLLHUP),
        new("EPOLLRDHUP", Libc.EPOLLRDHUP),
        new("EPOLL_CTL_ADD", Libc.EPOLL_CTL_ADD),
        new("EPOLL_CTL_DEL", Libc.EPOLL_CTL_DEL),
        new("EPOLL_CTL_MOD", Libc.EPOLL_CTL_MOD),
        new("EPOLL_CLOEXEC", Libc.EPOLL_CLOEXEC),
        new("EFD_CLOEXEC", Libc.EFD_CLOEXEC),
        new("EFD_NONBLOCK", Libc.EFD_NONBLOCK),
        new("EPERM", Errno.EPERM),
        new("ENOENT", Errno.ENOENT),
        new("ESRCH", Errno.ESRCH),
        new("EINTR", Errno.EINTR),
        new("EIO", Errno.EIO),
        new("EBADF", Errno.EBADF),
        new("EAGAIN", Errno.EAGAIN),
        new("ENOMEM", Errno.ENOMEM),
        new("EACCES", Errno.EACCES),
        new("EFAULT", Errno.EFAULT),
        new("EBUSY", Errno.EBUSY),
        new("EEXIST", Errno.EEXIST),
        new("ENODEV", Errno.ENODEV),
        new("EINVAL", Errno.EINVAL),
        new("ENOSPC", Errno.ENOSPC),
        new("EOPNOTSUPP", Errno.EOPNOTSUPP),
        new("FALLOC_FL_KEEP_SIZE", Libc.FALLOC_FL_KEEP_SIZE),
        new("FALLOC_FL_PUNCH_HOLE", Libc.FALLOC_FL_PUNCH_HOLE),
        new("RWF_NOWAIT", Libc.RWF_NOWAIT),
        new("TMPFS_MAGIC", Libc.TMPFS_MAGIC),
        new("RAMFS_MAGIC", Libc.RAMFS_MAGIC),
        // linux/io_uring.h, sys/syscall.h (asm/unistd.h)
        new("__NR_io_uring_setup", Libc.SYS_io_uring_setup),
        new("__NR_io_uring_enter", Libc.SYS_io_uring_enter),
        new("IORING_OP_READ", IoUring.IORING_OP_READ),
        new("IORING_OP_WRITE", IoUring.IORING_OP_WRITE),
        new("IORING_ENTER_GETEVENTS", IoUring.IORING_ENTER_GETEVENTS),
        new("IORING_OFF_SQ_RING", IoUring.IORING_OFF_SQ_RING),
        new("IORING_OFF_CQ_RING", IoUring.IORING_OFF_CQ_RING),
        new("IORING_OFF_SQES", IoUring.IORING_OFF_SQES),
        new("IORING_FEAT_NODROP", IoUring.IORING_FEAT_NODROP),
        new("MAP_POPULATE", IoUring.MAP_POPULATE),
        // the Linux _IOC encoding itself, on an arbitrary request
        new("_IOC(_IOC_READ, 'Z', 0x7f, 0x3fff)", LinuxIoctl.Ioc(LinuxIoctl.IOC_READ, 'Z', 0x7f, 0x3fff)),
    ];

    private static readonly Lazy<Dictionary<string, string>> CValues = new(() =>
    {
        var body = CProbe.Lines(Constants.Select(c => CProbe.PrintInt(c.C, c.C)))
            + CProbe.Lines(Enum.GetNames<XenbusState>().Select(n => CProbe.PrintInt("XenbusState" + n, "XenbusState" + n)))
            + CProbe.PrintString("XEN_IO_PROTO_ABI_X86_64", "XEN_IO_PROTO_ABI_X86_64")
            + CProbe.PrintString("XEN_IO_PROTO_ABI_X86_32", "XEN_IO_PROTO_ABI_X86_32")
            + CProbe.PrintString("XEN_IO_PROTO_ABI_NATIVE", "XEN_IO_PROTO_ABI_NATIVE");
        return CProbe.Run("#define _GNU_SOURCE\n" + CProbe.Program(body), "xen_constants_probe");
    });

    [SetUp]
    public void RequireHeaders() => CProbe.RequireHeaders();

    [TestCaseSource(nameof(Constants))]
    public void Constant_CSharpValue_MatchesInstalledHeader(Constant constant) =>
        Assert.That(constant.CSharp, Is.EqualTo(CProbe.Int(CValues.Value, constant.C)), constant.C);

    [Test]
    public void XenbusState_EveryMember_MatchesXenbusHeader()
    {
        Assert.Multiple(() =>
        {
            foreach (var state in Enum.GetValues<XenbusState>())
                Assert.That((long)state, Is.EqualTo(CProbe.Int(CValues.Value, "XenbusState" + state)), state.ToString());
        });
    }

    [Test]
    public void XenbusState_HeaderEnumerators_AllHaveCSharpMembers()
    {
        // The reverse direction: an enumerator added to xenbus.h must appear in BlkTap.XenbusState.
        var header = File.ReadAllText(BlkTap.Testing.Peers.RequireFile("/usr/include/xen/io/xenbus.h"));
        var cNames = Regex.Matches(header, @"\bXenbusState(\w+)\s*=").Select(m => m.Groups[1].Value).ToHashSet();
        Assert.That(cNames, Is.EquivalentTo(Enum.GetNames<XenbusState>()));
    }

    [Test]
    public void ProtocolNames_MatchProtocolsHeader()
    {
        Assert.Multiple(() =>
        {
            Assert.That(BlkifProtocolNames.X86_64, Is.EqualTo(CValues.Value["XEN_IO_PROTO_ABI_X86_64"]));
            Assert.That(BlkifProtocolNames.X86_32, Is.EqualTo(CValues.Value["XEN_IO_PROTO_ABI_X86_32"]));
            // The native ABI of this (x86_64) build is what a missing protocol node means.
            Assert.That(BlkifProtocolNames.TryParse(CValues.Value["XEN_IO_PROTO_ABI_NATIVE"], out var native), Is.True);
            Assert.That(native, Is.EqualTo(BlkifProtocol.X86_64));
        });
    }
}
