using System.Runtime.InteropServices;
using BlkTap.Linux.Interop;
using BlkTap.Xen.Interop;
using NUnit.Framework;

namespace BlkTap.Xen.Tests.Interop;

/// <summary>
/// Proves every C# mirror of a kernel or Xen-library struct against gcc's view of the installed headers:
/// sizeof and offsetof of every field, and that no C# field is left out of the table.
/// </summary>
[TestFixture]
public class XenStructLayoutTests
{
    private static (string, string) F(string c, string cs) => (c, cs);

    private static (string, string)[] CopyPtr(string c, string cs) =>
    [
        F($"{c}.virt", $"{cs}.Virt"),
        F($"{c}.foreign.ref", $"{cs}.Ref"),
        F($"{c}.foreign.offset", $"{cs}.Offset"),
        F($"{c}.foreign.domid", $"{cs}.Domid"),
    ];

    internal static readonly AbiStruct[] Structs =
    [
        // linux-libc-dev /usr/include/xen/gntdev.h
        new("struct ioctl_gntdev_grant_ref", typeof(IoctlGntdevGrantRef), F("domid", "Domid"), F("ref", "Ref")),
        new("struct ioctl_gntdev_map_grant_ref", typeof(IoctlGntdevMapGrantRef),
            F("count", "Count"), F("pad", "Pad"), F("index", "Index"), F("refs[0].domid", "Refs.Domid"), F("refs[0].ref", "Refs.Ref")),
        new("struct ioctl_gntdev_unmap_grant_ref", typeof(IoctlGntdevUnmapGrantRef),
            F("index", "Index"), F("count", "Count"), F("pad", "Pad")),
        new("struct ioctl_gntdev_get_offset_for_vaddr", typeof(IoctlGntdevGetOffsetForVaddr),
            F("vaddr", "Vaddr"), F("offset", "Offset"), F("count", "Count"), F("pad", "Pad")),
        new("struct ioctl_gntdev_set_max_grants", typeof(IoctlGntdevSetMaxGrants), F("count", "Count")),
        new("struct ioctl_gntdev_unmap_notify", typeof(IoctlGntdevUnmapNotify),
            F("index", "Index"), F("action", "Action"), F("event_channel_port", "EventChannelPort")),
        new("struct gntdev_grant_copy_segment", typeof(GntdevGrantCopySegment),
            [.. CopyPtr("source", "Source"), .. CopyPtr("dest", "Dest"), F("len", "Len"), F("flags", "Flags"), F("status", "Status")]),
        new("struct ioctl_gntdev_grant_copy", typeof(IoctlGntdevGrantCopy), F("count", "Count"), F("segments", "Segments")),
        // libxengnttab's copy segment must match gntdev's (the library hands it to the ioctl)
        new("struct xengnttab_grant_copy_segment", typeof(GntdevGrantCopySegment),
            [.. CopyPtr("source", "Source"), .. CopyPtr("dest", "Dest"), F("len", "Len"), F("flags", "Flags"), F("status", "Status")]),
        // linux-libc-dev /usr/include/xen/gntalloc.h
        new("struct ioctl_gntalloc_alloc_gref", typeof(IoctlGntallocAllocGref),
            F("domid", "Domid"), F("flags", "Flags"), F("count", "Count"), F("index", "Index"), F("gref_ids[0]", "GrefIds")),
        new("struct ioctl_gntalloc_dealloc_gref", typeof(IoctlGntallocDeallocGref), F("index", "Index"), F("count", "Count")),
        // linux-libc-dev /usr/include/xen/evtchn.h
        new("struct ioctl_evtchn_bind_virq", typeof(IoctlEvtchnBindVirq), F("virq", "Virq")),
        new("struct ioctl_evtchn_bind_interdomain", typeof(IoctlEvtchnBindInterdomain),
            F("remote_domain", "RemoteDomain"), F("remote_port", "RemotePort")),
        new("struct ioctl_evtchn_bind_unbound_port", typeof(IoctlEvtchnBindUnboundPort), F("remote_domain", "RemoteDomain")),
        new("struct ioctl_evtchn_unbind", typeof(IoctlEvtchnUnbind), F("port", "Port")),
        new("struct ioctl_evtchn_notify", typeof(IoctlEvtchnNotify), F("port", "Port")),
        new("struct ioctl_evtchn_restrict_domid", typeof(IoctlEvtchnRestrictDomid), F("domid", "Domid")),
        // libxen-dev xenstore_lib.h, libc poll.h
        new("struct xs_permissions", typeof(XsPermissionsNative), F("id", "Id"), F("perms", "Perms")),
        new("struct pollfd", typeof(PollFd), F("fd", "Fd"), F("events", "Events"), F("revents", "Revents")),
        // libc sys/uio.h (writev); BlkTap.Linux.IoSegment is passed as this struct, so it is proved too
        new("struct iovec", typeof(IoVec), F("iov_base", "Base"), F("iov_len", "Length")),
        new("struct iovec", typeof(BlkTap.Linux.IoSegment), F("iov_base", "Address"), F("iov_len", "Length")),
        // libc sys/epoll.h: packed on x86_64 (12 bytes, data at 4), which is the only layout EpollEvent models
        new("struct epoll_event", typeof(EpollEvent), F("events", "Events"), F("data.u64", "Data")),
        // libc sys/socket.h (sendmsg with SCM_RIGHTS: the shmring server sends its sealed memory)
        new("struct msghdr", typeof(MsgHdr), F("msg_name", "Name"), F("msg_namelen", "NameLength"), F("msg_iov", "Iov"),
            F("msg_iovlen", "IovLength"), F("msg_control", "Control"), F("msg_controllen", "ControlLength"), F("msg_flags", "Flags")),
        new("struct cmsghdr", typeof(CmsgHdr), F("cmsg_len", "Length"), F("cmsg_level", "Level"), F("cmsg_type", "Type")),
        // linux-libc-dev /usr/include/linux/io_uring.h (the img tap's io_uring)
        new("struct io_sqring_offsets", typeof(IoSqringOffsets), F("head", "Head"), F("tail", "Tail"), F("ring_mask", "RingMask"),
            F("ring_entries", "RingEntries"), F("flags", "Flags"), F("dropped", "Dropped"), F("array", "Array"), F("resv1", "Resv1"), F("resv2", "Resv2")),
        new("struct io_cqring_offsets", typeof(IoCqringOffsets), F("head", "Head"), F("tail", "Tail"), F("ring_mask", "RingMask"),
            F("ring_entries", "RingEntries"), F("overflow", "Overflow"), F("cqes", "Cqes"), F("flags", "Flags"), F("resv1", "Resv1"), F("resv2", "Resv2")),
        new("struct io_uring_params", typeof(IoUringParams), F("sq_entries", "SqEntries"), F("cq_entries", "CqEntries"), F("flags", "Flags"),
            F("sq_thread_cpu", "SqThreadCpu"), F("sq_thread_idle", "SqThreadIdle"), F("features", "Features"), F("wq_fd", "WqFd"),
            F("resv[0]", "Resv0"), F("resv[1]", "Resv1"), F("resv[2]", "Resv2"),
            F("sq_off.head", "SqOff.Head"), F("sq_off.tail", "SqOff.Tail"), F("sq_off.ring_mask", "SqOff.RingMask"), F("sq_off.ring_entries", "SqOff.RingEntries"),
            F("sq_off.flags", "SqOff.Flags"), F("sq_off.dropped", "SqOff.Dropped"), F("sq_off.array", "SqOff.Array"), F("sq_off.resv1", "SqOff.Resv1"), F("sq_off.resv2", "SqOff.Resv2"),
            F("cq_off.head", "CqOff.Head"), F("cq_off.tail", "CqOff.Tail"), F("cq_off.ring_mask", "CqOff.RingMask"), F("cq_off.ring_entries", "CqOff.RingEntries"),
            F("cq_off.overflow", "CqOff.Overflow"), F("cq_off.cqes", "CqOff.Cqes"), F("cq_off.flags", "CqOff.Flags"), F("cq_off.resv1", "CqOff.Resv1"), F("cq_off.resv2", "CqOff.Resv2")),
        new("struct io_uring_sqe", typeof(IoUringSqe), F("opcode", "Opcode"), F("flags", "Flags"), F("ioprio", "Ioprio"), F("fd", "Fd"),
            F("off", "Off"), F("addr", "Addr"), F("len", "Len"), F("rw_flags", "RwFlags"), F("user_data", "UserData"), F("buf_index", "BufIndex"),
            F("personality", "Personality"), F("splice_fd_in", "SpliceFdIn"), F("addr3", "Addr3"), F("__pad2[0]", "Pad2")),
        new("struct io_uring_cqe", typeof(IoUringCqe), F("user_data", "UserData"), F("res", "Res"), F("flags", "Flags")),
    ];

    private static readonly Lazy<Dictionary<string, string>> CValues = new(() =>
        CProbe.Run(CProbe.Program(CProbe.Lines(Structs.SelectMany(s => s.CLines())), GntallocHeader), "xen_struct_probe"));

    /// <summary>gntalloc.h is not among <see cref="CProbe.StandardIncludes"/>; its structs need it.</summary>
    internal const string GntallocHeader = "#include <xen/gntalloc.h>\n";

    [SetUp]
    public void RequireHeaders() => CProbe.RequireHeaders();

    [TestCaseSource(nameof(Structs))]
    public void Layout_CSharpMirror_MatchesInstalledHeader(AbiStruct s)
    {
        var problems = s.Compare(CValues.Value);
        Assert.That(problems, Is.Empty, string.Join("\n", problems));
    }

    [Test]
    public void Table_EveryInteropStruct_IsProved()
    {
        // Every blittable struct under BlkTap.Xen.Interop and BlkTap.Linux.Interop is a native ABI mirror: each must be in the table.
        var mirrors = new[] { typeof(IoctlGntdevGrantRef).Assembly, typeof(PollFd).Assembly }.SelectMany(a => a.GetTypes())
            .Where(t => t.IsValueType && !t.IsEnum && t.Namespace is "BlkTap.Xen.Interop" or "BlkTap.Linux.Interop" && t.IsLayoutSequential | t.IsExplicitLayout)
            .Where(t => !t.Name.Contains('<'))
            .ToList();
        var proved = Structs.Select(s => s.CSharpType).ToHashSet();
        proved.Add(typeof(GntdevCopyPtr)); // proved through both copy-segment entries
        Assert.That(mirrors.Where(t => !proved.Contains(t)).Select(t => t.Name), Is.Empty);
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct SwappedGrantRef
    {
        public uint Ref;
        public uint Domid;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct ShortUnmapGrantRef
    {
        public ulong Index;
        public uint Count;
    }

    [Test]
    public void Compare_SwappedFields_ReportsEveryMovedField()
    {
        var mutant = new AbiStruct("struct ioctl_gntdev_grant_ref", typeof(SwappedGrantRef), F("domid", "Domid"), F("ref", "Ref"));
        var problems = mutant.Compare(CValues.Value);
        Assert.That(problems, Has.Count.EqualTo(2));
        Assert.That(problems[0], Does.Contain("offsetof(struct ioctl_gntdev_grant_ref, domid) is 0 in C"));
    }

    [Test]
    public void Compare_MissingPadAndUncoveredField_ReportsBoth()
    {
        var shortened = new AbiStruct("struct ioctl_gntdev_unmap_grant_ref", typeof(ShortUnmapGrantRef), F("index", "Index"));
        var problems = shortened.Compare(CValues.Value);
        // Size still 16 after alignment padding, so the table-coverage rule is what catches the dropped field.
        Assert.That(problems, Has.Some.Contains("ShortUnmapGrantRef.Count has no C counterpart"));
    }
}
