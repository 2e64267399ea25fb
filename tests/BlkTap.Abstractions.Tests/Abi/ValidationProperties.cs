using BlkTap.Testing;
using FsCheck;
using FsCheck.Fluent;
using NUnit.Framework;
using BlkTap.Testing.Generators;

namespace BlkTap.Abstractions.Tests.Abi;

/// <summary>
/// Properties of <see cref="BlkifValidation"/>: generated requests with one known fault get exactly
/// that fault, valid requests are accepted, and whatever bytes a guest writes, a request that passes
/// is safe to execute (checked against the rules restated here, independently of the validator).
/// </summary>
[TestFixture]
public sealed class ValidationProperties
{
    [FsCheck.NUnit.Property(Arbitrary = new[] { typeof(BlkTapArbitraries) }, MaxTest = 2000)]
    public void Validate_RequestWithOneKnownFault_ReportsThatFaultAndItsStatus(MalformedRequest m)
    {
        var c = m.Case;
        var fault = BlkifValidation.Validate(c.Request, c.DiskSectors, c.ReadOnly, c.MaxIndirectSegments);
        Assert.That(fault, Is.EqualTo(c.Expected));
        var status = c.Expected == RequestFault.UnknownOperation ? BlkifStatus.NotSupported : BlkifStatus.Error;
        Assert.That(BlkifValidation.StatusFor(fault), Is.EqualTo(status));
    }

    [FsCheck.NUnit.Property(Arbitrary = new[] { typeof(BlkTapArbitraries) }, MaxTest = 1000)]
    public void Validate_ValidRequest_IsAccepted(ValidRequest v)
    {
        var c = v.Case;
        Assert.That(BlkifValidation.Validate(c.Request, c.DiskSectors, c.ReadOnly, c.MaxIndirectSegments), Is.EqualTo(RequestFault.None));
        Assert.That(BlkifValidation.StatusFor(RequestFault.None), Is.EqualTo(BlkifStatus.Okay));
    }

    [FsCheck.NUnit.Property(Arbitrary = new[] { typeof(BlkTapArbitraries) }, MaxTest = 2000)]
    public void Validate_AnyDecodedSlot_AcceptsOnlySafeRequests(RingSlot slot, ulong smallDisk, bool hugeDisk, bool readOnly, bool indirect)
    {
        ulong disk = hugeDisk ? ulong.MaxValue - (smallDisk & 0xFF) : smallDisk;
        int maxIndirect = indirect ? 256 : 0;
        BlkifCodec.DecodeRequest(slot.Bytes, slot.Layout, out var r);
        var fault = BlkifValidation.Validate(r, disk, readOnly, maxIndirect);
        if (fault != RequestFault.None) return;

        string what = BlkifRequestText.Describe(r);
        switch (r.Operation)
        {
            case BlkifOperation.Read or BlkifOperation.Write or BlkifOperation.WriteBarrier or BlkifOperation.FlushDiskCache:
                Assert.That(r.SegmentCount, Is.InRange(r.Operation is BlkifOperation.Read or BlkifOperation.Write ? 1 : 0, 11), what);
                UInt128 end = r.Sector;
                for (int i = 0; i < r.SegmentCount; i++)
                {
                    var s = r.Segments[i];
                    Assert.That(s.FirstSector <= s.LastSector && s.LastSector <= 7, Is.True, what);
                    end += (uint)(s.LastSector - s.FirstSector + 1);
                }
                Assert.That(end <= disk, Is.True, $"past the end of a {disk}-sector disk: {what}");
                if (readOnly) Assert.That(r.Operation == BlkifOperation.Read || (r.Operation == BlkifOperation.FlushDiskCache && r.SegmentCount == 0), Is.True, what);
                break;
            case BlkifOperation.Discard:
                Assert.That(readOnly, Is.False, what);
                Assert.That((UInt128)r.Sector + r.DiscardSectorCount <= disk, Is.True, what);
                break;
            case BlkifOperation.Indirect:
                Assert.That(maxIndirect, Is.GreaterThan(0), what);
                Assert.That(r.IndirectOperation, Is.EqualTo(BlkifOperation.Read).Or.EqualTo(BlkifOperation.Write), what);
                Assert.That(r.SegmentCount, Is.InRange(1, maxIndirect), what);
                if (readOnly) Assert.That(r.IndirectOperation, Is.EqualTo(BlkifOperation.Read), what);
                break;
            default:
                Assert.Fail($"unknown operation accepted: {what}");
                break;
        }
    }

    [Test]
    public void MalformedGenerator_ManySamples_CoversEveryFault()
    {
        var samples = BlkifGenerators.MalformedCase.Sample(3000);
        Assert.That(samples, Has.Length.EqualTo(3000));
        var kinds = samples.Select(c => c.Expected).ToHashSet();
        var all = Enum.GetValues<RequestFault>().Where(f => f != RequestFault.None);
        Assert.That(kinds, Is.EquivalentTo(all));
    }

    [TestCase(0UL, 1UL, 0UL, ExpectedResult = RequestFault.OutOfRange)]
    [TestCase(ulong.MaxValue, 1UL, ulong.MaxValue, ExpectedResult = RequestFault.OutOfRange)]
    [TestCase(2UL, ulong.MaxValue, 1000UL, ExpectedResult = RequestFault.OutOfRange)]
    [TestCase(ulong.MaxValue - 1, 1UL, ulong.MaxValue, ExpectedResult = RequestFault.None)]
    [TestCase(1000UL, 0UL, 1000UL, ExpectedResult = RequestFault.None)]
    public RequestFault Validate_DiscardNearUlongOverflow_ChecksRangeWithoutWrapping(ulong sector, ulong count, ulong disk) =>
        BlkifValidation.Validate(new BlkifRequest { Operation = BlkifOperation.Discard, Sector = sector, DiscardSectorCount = count },
            disk, readOnly: false);
}
