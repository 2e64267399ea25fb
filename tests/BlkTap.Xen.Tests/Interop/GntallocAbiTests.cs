using BlkTap.Xen.Interop;
using NUnit.Framework;

namespace BlkTap.Xen.Tests.Interop;

/// <summary>
/// The gntalloc ioctl numbers and flag: recomputed by hand from the _IOC layout (so a wrong struct size shows
/// here even without gcc) and compared with gcc's view of the installed gntalloc.h.
/// </summary>
[TestFixture]
public class GntallocAbiTests
{
    // NOTE: asm-generic/ioctl.h: nr bits 0-7, type bits 8-15, size bits 16-29, dir bits 30-31 (_IOC_NONE = 0).
    private static uint IocNone(char type, uint nr, uint size) => (size << 16) | ((uint)type << 8) | nr;

    [Test]
    public void AllocGref_IoctlNumber_IsIocNoneG5Size24()
    {
        Assert.That(GntallocIoctls.IOCTL_GNTALLOC_ALLOC_GREF, Is.EqualTo(IocNone('G', 5, 24)));
        Assert.That(GntallocIoctls.IOCTL_GNTALLOC_ALLOC_GREF, Is.EqualTo(0x00184705u));
    }

    [Test]
    public void DeallocGref_IoctlNumber_IsIocNoneG6Size16()
    {
        Assert.That(GntallocIoctls.IOCTL_GNTALLOC_DEALLOC_GREF, Is.EqualTo(IocNone('G', 6, 16)));
        Assert.That(GntallocIoctls.IOCTL_GNTALLOC_DEALLOC_GREF, Is.EqualTo(0x00104706u));
    }

    [Test]
    public void IoctlNumbersAndFlag_MatchInstalledHeader()
    {
        var body = CProbe.PrintInt("alloc", "IOCTL_GNTALLOC_ALLOC_GREF")
            + CProbe.PrintInt("dealloc", "IOCTL_GNTALLOC_DEALLOC_GREF")
            + CProbe.PrintInt("writable", "GNTALLOC_FLAG_WRITABLE");
        var values = CProbe.Run(CProbe.Program(body, XenStructLayoutTests.GntallocHeader), "gntalloc_constants_probe");
        Assert.Multiple(() =>
        {
            Assert.That(CProbe.Int(values, "alloc"), Is.EqualTo(GntallocIoctls.IOCTL_GNTALLOC_ALLOC_GREF));
            Assert.That(CProbe.Int(values, "dealloc"), Is.EqualTo(GntallocIoctls.IOCTL_GNTALLOC_DEALLOC_GREF));
            Assert.That(CProbe.Int(values, "writable"), Is.EqualTo(GntallocIoctls.GNTALLOC_FLAG_WRITABLE));
        });
    }
}
