using BlkTap.Testing;
using BlkTap.Testing.Advisories;
using NUnit.Framework;

namespace BlkTap.Xen.Tests.Advisories;

/// <summary>
/// XSA-361/362/365 (blkback's grant-map error handling) on a real dom0: a request whose segments name good gntalloc
/// pages and one reference gntdev cannot map (never granted, or read-only for a read). gntdev fails the whole map
/// (its mmap does the grant maps); the backend unmaps whatever it had mapped for the request (an indirect request's
/// descriptor page) and answers ERROR: no crash, nothing left mapped (the mapper's handles and /proc/self/maps), the
/// guest's pages untouched, the session alive for the next request. The emulator's twin, with injected map failures
/// too: tests/BlkTap.Abstractions.Tests/Advisories/Xsa361PartialMapTests.cs.
/// </summary>
[TestFixture]
[Category("RequiresXen")]
public sealed class Xsa361PartialMapXenTests
{
    public enum Failure
    {
        /// <summary>An inline read whose sixth segment names a reference never granted.</summary>
        UngrantedSegment,
        /// <summary>A read whose last segments are read-only grants (gntdev's writable map fails on them).</summary>
        ReadOnlySegments,
        /// <summary>An indirect read whose descriptor page maps but one data reference is not granted.</summary>
        IndirectUngrantedSegment,
    }

    [SetUp]
    public void RequireXen() => XenAdvisoryRig.RequireXen();

    [TestCase(Failure.UngrantedSegment)]
    [TestCase(Failure.ReadOnlySegments)]
    [TestCase(Failure.IndirectUngrantedSegment)]
    public void RingSession_Xsa361_SomeSegmentsFailToMapOnRealXen_ErrorAndNothingLeft(Failure failure)
    {
        InterceptingGrantMapper? mapper = null;
        using var rig = XenAdvisoryRig.Start(wrapMapper: m => mapper = new InterceptingGrantMapper(m));
        var guest = rig.Connect("xvdr");
        int maps = XenResources.GntdevMappings(); // the ring
        var writable = guest.Grant(failure == Failure.ReadOnlySegments ? 7 : 11, writable: true);
        var readOnly = failure == Failure.ReadOnlySegments ? guest.Grant(4, writable: false) : null;
        var pages = Enumerable.Range(0, writable.PageCount).Select(i => (Pages: writable, Index: i))
            .Concat(Enumerable.Range(0, readOnly?.PageCount ?? 0).Select(i => (Pages: readOnly!, Index: i))).ToArray();
        foreach (var (g, i) in pages) XenRawFrontend.Page(g, i).Fill(0x5A);
        var descriptors = guest.Grant(1, writable: false);
        var segments = pages.Select(p => new BlkifSegment(p.Pages.Reference(p.Index), 0, 7)).ToArray();
        if (failure is Failure.UngrantedSegment or Failure.IndirectUngrantedSegment)
            segments[5] = new BlkifSegment(segments.Max(s => s.GrantRef) + 1000, 0, 7);
        int mapsSeen = 0;
        mapper!.AfterMap = (_, _) => Interlocked.Increment(ref mapsSeen);
        int mapsBefore = Volatile.Read(ref mapsSeen);

        BlkifRequest request;
        if (failure is Failure.IndirectUngrantedSegment)
        {
            // The descriptor page is granted read-only to the backend; the guest writes it through its own mapping.
            for (int i = 0; i < segments.Length; i++) HostileEdits.WriteDescriptor(XenRawFrontend.Page(descriptors, 0), i, segments[i]);
            request = new BlkifRequest { Operation = BlkifOperation.Indirect, IndirectOperation = BlkifOperation.Read, SegmentCount = segments.Length, Sector = 0 };
            request.IndirectRefs[0] = descriptors.Reference(0);
        }
        else request = XenAdvisoryRig.Rw(BlkifOperation.Read, 0, segments);
        var response = guest.Submit(request, "the response to the half-mappable request");

        Assert.That(response.Status, Is.EqualTo(BlkifStatus.Error));
        Assert.That(response.Operation, Is.EqualTo(BlkifOperation.Read));
        Assert.That(mapper.FailedMaps, Is.EqualTo(1), "the data map failed once");
        bool indirect = request.Operation == BlkifOperation.Indirect;
        Assert.That(Volatile.Read(ref mapsSeen) - mapsBefore, Is.EqualTo(indirect ? 1 : 0), "only the descriptor page mapped");
        Waits.OnLoop(rig.Runtime, () => 0);
        Assert.That(mapper.LiveMappings, Is.EqualTo(1), "only the ring stays mapped (our handles)");
        Assert.That(rig.Gntdev.MappingCount, Is.EqualTo(1), "only the ring stays mapped (gntdev's)");
        Assert.That(XenResources.GntdevMappings(), Is.EqualTo(maps), "only the ring stays mapped (/proc/self/maps)");
        Assert.That(rig.Runtime.InFlight, Is.Zero);
        foreach (var (g, i) in pages) Assert.That(XenRawFrontend.Page(g, i).ToArray(), Is.All.EqualTo(0x5A), "a failed read wrote into the guest");
        Assert.That(rig.Crashes, Is.Empty);

        // The session lives on: the same pages serve a good write, whose data lands on the disk.
        var good = XenAdvisoryRig.Rw(BlkifOperation.Write, 64, pages.Take(3).Select(p => new BlkifSegment(p.Pages.Reference(p.Index), 0, 7)).ToArray());
        Assert.That(guest.Submit(good, "a good request after the failure").Status, Is.EqualTo(BlkifStatus.Okay));
        var back = new byte[3 * 4096];
        Assert.That(rig.Disk.Read(64, back), Is.EqualTo(BlkifStatus.Okay));
        Assert.That(back, Is.All.EqualTo(0x5A));
        Waits.OnLoop(rig.Runtime, () => 0);
        Assert.That(XenResources.GntdevMappings(), Is.EqualTo(maps), "the good request's pages were unmapped");
    }
}
