using BlkTap.Xen;
using BlkTap.Xen.Internal;
using BlkTap.Xen.Interop;
using FsCheck;
using FsCheck.Fluent;
using NUnit.Framework;

namespace BlkTap.Tests.Xen;

/// <summary>The 2005 /dev/blktap layout helpers and the grant status mapping.</summary>
[TestFixture]
public class BlktapDeviceAbiTests
{
    [Test]
    public void Constants_MatchDesign()
    {
        Assert.Multiple(() =>
        {
            Assert.That((BlktapDeviceAbi.IoctlKickFe, BlktapDeviceAbi.IoctlKickBe, BlktapDeviceAbi.IoctlSetMode), Is.EqualTo((1u, 2u, 3u)));
            Assert.That(new[] { BlktapDeviceAbi.ModePassthrough, BlktapDeviceAbi.ModeInterceptFe, BlktapDeviceAbi.ModeInterceptBe, BlktapDeviceAbi.ModeInterpose },
                Is.EqualTo(new uint[] { 0, 1, 2, 3 }));
            Assert.That(BlktapDeviceAbi.DataPage(0, 0), Is.EqualTo(3));
            Assert.That(BlktapDeviceAbi.DataPage(2, 5), Is.EqualTo(3 + 2 * 12 + 5));
            Assert.That(BlktapDeviceAbi.DataOffset(1, 0), Is.EqualTo(15 * 4096));
            Assert.That(BlktapDeviceAbi.MappingLength(64), Is.EqualTo((3 + 64 * 12) * 4096L));
        });
    }

    [FsCheck.NUnit.Property]
    public Property Id_RoundTripsDomainAndSlot(ushort domid, ushort slot)
    {
        uint id = BlktapDeviceAbi.MakeId(domid, slot);
        return (id == (((uint)domid << 16) | slot) && BlktapDeviceAbi.IdDomain(id) == domid && BlktapDeviceAbi.IdSlot(id) == slot).ToProperty();
    }

    [FsCheck.NUnit.Property]
    public Property DataPage_DistinctSlotSegment_NeverShareAPageOrTouchRings(ushort slotA, byte segA, ushort slotB, byte segB)
    {
        int sa = segA % BlktapDeviceAbi.MaxSegmentsPerRequest, sb = segB % BlktapDeviceAbi.MaxSegmentsPerRequest;
        long a = BlktapDeviceAbi.DataPage(slotA, sa), b = BlktapDeviceAbi.DataPage(slotB, sb);
        bool same = slotA == slotB && sa == sb;
        return (a >= BlktapDeviceAbi.RingPages && b >= BlktapDeviceAbi.RingPages && (a == b) == same
            && a < BlktapDeviceAbi.MappingLength(slotA + 1) / BlktapDeviceAbi.PageSize).ToProperty();
    }

    [TestCase(-1, 0)]
    [TestCase(65536, 0)]
    [TestCase(0, 11)]
    [TestCase(0, -1)]
    public void DataPage_OutOfRange_ThrowsNamingTheArgument(int slot, int segment)
    {
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => BlktapDeviceAbi.DataPage(slot, segment));
        Assert.That(ex!.ParamName, Is.EqualTo(slot is < 0 or > 65535 ? "slot" : "segment"));
    }

    [TestCase(GrantTableConstants.GNTST_okay, GrantStatus.Okay)]
    [TestCase(GrantTableConstants.GNTST_bad_domain, GrantStatus.NoSuchDomain)]
    [TestCase(GrantTableConstants.GNTST_bad_gntref, GrantStatus.NotGranted)]
    [TestCase(GrantTableConstants.GNTST_permission_denied, GrantStatus.ReadOnly)]
    [TestCase(GrantTableConstants.GNTST_general_error, GrantStatus.Failed)]
    [TestCase(GrantTableConstants.GNTST_no_space, GrantStatus.Failed)]
    [TestCase(GrantTableConstants.GNTST_eagain, GrantStatus.Failed)]
    public void FromGntst_KnownCode_MapsToGrantStatus(short gntst, GrantStatus expected) =>
        Assert.That(GrantStatusMapping.FromGntst(gntst), Is.EqualTo(expected));

    [FsCheck.NUnit.Property]
    public Property FromGntst_AnyCode_IsOkayOnlyForZero(short gntst) =>
        ((GrantStatusMapping.FromGntst(gntst) == GrantStatus.Okay) == (gntst == 0)).ToProperty();
}
