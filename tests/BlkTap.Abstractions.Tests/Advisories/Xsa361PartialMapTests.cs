using BlkTap.Emulator;
using BlkTap.Testing;
using BlkTap.Testing.Advisories;
using BlkTap.Testing.Rigs;
using NUnit.Framework;

namespace BlkTap.Abstractions.Tests.Advisories;

/// <summary>
/// XSA-361/362/365 (blkback's grant-map error handling): a request where some segments map and others fail. The
/// backend unmaps whatever it had mapped for the request (its indirect pages, the pages that did map) and answers
/// ERROR: no crash, no mapping left, every grant revocable by the guest, the session alive for the next request.
/// </summary>
public class Xsa361PartialMapTests
{
    public enum Failure
    {
        /// <summary>An inline request whose sixth segment names a reference never granted.</summary>
        UngrantedSegment,
        /// <summary>A read whose last segments are read-only grants (the writable map fails on them).</summary>
        ReadOnlySegments,
        /// <summary>An indirect request whose descriptor page maps but one data reference is not granted.</summary>
        IndirectUngrantedSegment,
        /// <summary>An indirect request whose descriptor page maps but the data map fails (gntdev out of slots).</summary>
        IndirectDataMapFails,
        /// <summary>An inline request whose map fails although every grant is good (gntdev out of slots).</summary>
        DataMapFails,
    }

    [TestCase(Failure.UngrantedSegment)]
    [TestCase(Failure.ReadOnlySegments)]
    [TestCase(Failure.IndirectUngrantedSegment)]
    [TestCase(Failure.IndirectDataMapFails)]
    [TestCase(Failure.DataMapFails)]
    public async Task RingSession_Xsa361_SomeSegmentsFailToMap_ErrorAndNothingLeft(Failure failure)
    {
        InterceptingGrantMapper? mapper = null;
        await using var rig = await AdvisoryRig.StartAsync(wrapMapper: m => mapper = new InterceptingGrantMapper(m));
        var guest = rig.Frontends[0];
        var honest = rig.Frontends[1];
        int baseline = rig.Emulator.MappingCount; // the two rings
        var pages = Enumerable.Range(0, 11).Select(i => AdvisoryRig.GrantPage(guest, readOnly: failure == Failure.ReadOnlySegments && i >= 7)).ToArray();
        foreach (var (page, _) in pages) guest.Domain.GetPage(page).Fill(0x5A);
        var (descriptors, descriptorRef) = AdvisoryRig.GrantPage(guest, readOnly: true);
        var segments = pages.Select(p => new BlkifSegment(p.Ref, 0, 7)).ToArray();
        if (failure is Failure.UngrantedSegment or Failure.IndirectUngrantedSegment) segments[5] = new BlkifSegment(pages[^1].Ref + 1000, 0, 7);
        int mapsSeen = 0;
        if (failure is Failure.IndirectDataMapFails or Failure.DataMapFails)
            mapper!.Fail = (refs, _) => refs.Contains(pages[0].Ref) ? GrantStatus.Failed : null;
        mapper!.AfterMap = (_, _) => Interlocked.Increment(ref mapsSeen);

        BlkifRequest request;
        if (failure is Failure.IndirectUngrantedSegment or Failure.IndirectDataMapFails)
        {
            for (int i = 0; i < segments.Length; i++) GuestMemory.WriteDescriptor(guest.Domain, descriptors, i, segments[i]);
            request = new BlkifRequest { Operation = BlkifOperation.Indirect, IndirectOperation = BlkifOperation.Read, SegmentCount = segments.Length, Sector = 0 };
            request.IndirectRefs[0] = descriptorRef;
        }
        else request = AdvisoryRig.Rw(BlkifOperation.Read, 0, segments);
        var response = await Waits.For(guest.SubmitRaw(AdvisoryRig.Raw(request, guest.Layout)), "the response to the half-mappable request");

        Assert.That(response.Status, Is.EqualTo(BlkifStatus.Error));
        Assert.That(response.Operation, Is.EqualTo(BlkifOperation.Read));
        Assert.That(mapper.FailedMaps, Is.EqualTo(1), "the data map failed once");
        bool indirect = request.Operation == BlkifOperation.Indirect;
        Assert.That(mapsSeen, Is.EqualTo(indirect ? 1 : 0), "only the descriptor page mapped");
        // Nothing of the request stays mapped: the mapper's handles, the emulator's mappings, every grant's map count.
        Waits.Quiesce(rig.Emulator, rig.Runtime);
        Assert.That(mapper.LiveMappings, Is.EqualTo(2), "only the two rings stay mapped");
        Assert.That(rig.Emulator.MappingCount, Is.EqualTo(baseline));
        Assert.That(rig.Runtime.InFlight, Is.Zero);
        foreach (var (page, gref) in pages.Append((descriptors, descriptorRef)))
            Assert.That(guest.Domain.Grants.MapCount(gref), Is.Zero, $"grant {gref} still mapped");
        foreach (var (page, _) in pages) Assert.That(guest.Domain.GetPage(page).ToArray(), Is.All.EqualTo(0x5A), "a failed read wrote into the guest");
        Assert.That(rig.Crashes, Is.Empty);
        Assert.That(guest.IsBroken, Is.False);

        // The session lives on: the same pages serve a good request, then the guest takes every grant back.
        mapper.Fail = null;
        var good = AdvisoryRig.Rw(BlkifOperation.Write, 0, segments.Take(3).Select((_, i) => new BlkifSegment(pages[i].Ref, 0, 7)).ToArray());
        Assert.That((await Waits.For(guest.SubmitRaw(AdvisoryRig.Raw(good, guest.Layout)), "a good request after the failure")).Status, Is.EqualTo(BlkifStatus.Okay));
        var back = new byte[4096];
        Assert.That(await Waits.For(honest.ReadAsync(0, back), "the honest guest's read"), Is.EqualTo(BlkifStatus.Okay));
        Waits.Quiesce(rig.Emulator, rig.Runtime);
        foreach (var (_, gref) in pages.Append((descriptors, descriptorRef)))
            Assert.That(guest.Domain.Grants.EndAccess(gref), Is.True, $"grant {gref} cannot be revoked: a mapping leaked");
    }
}
