using System.Buffers.Binary;
using System.Collections.Concurrent;
using BlkTap.Testing;
using BlkTap.Testing.Advisories;
using NUnit.Framework;

namespace BlkTap.Xen.Tests.Advisories;

/// <summary>
/// XSA-155 (double fetch) on a real dom0: the backend copies a request, and every indirect page, out of shared memory
/// once. Here the shared memory is real: gntdev maps the guest's gntalloc pages into the backend, so the ring slot and a
/// read-only descriptor page alias the pages the hostile frontend keeps writing. It rewrites them at the moment the
/// backend maps the request's data (gntdev wrapped as <see cref="InterceptingGrantMapper"/>), when it unmaps the
/// descriptor page, and while the hooks run; neither what was validated, nor what the hooks see, nor where the data
/// goes changes. The emulator's twin: tests/BlkTap.Abstractions.Tests/Advisories/Xsa155DoubleFetchTests.cs.
/// </summary>
[TestFixture]
[Category("RequiresXen")]
public sealed class Xsa155DoubleFetchXenTests
{
    /// <summary>What the hook saw of one request (requests are pooled: never keep the request itself).</summary>
    private sealed record Seen(ulong Sector, int SegmentCount, int[] Lengths, int Bytes)
    {
        public bool Same(Seen other) =>
            Sector == other.Sector && SegmentCount == other.SegmentCount && Bytes == other.Bytes && Lengths.SequenceEqual(other.Lengths);
    }

    private static Seen Snapshot(TapRequest r) =>
        new(r.Sector, r.SegmentCount, r.Segments.ToArray().Select(s => s.Length).ToArray(), r.ByteCount);

    [SetUp]
    public void RequireXen() => XenAdvisoryRig.RequireXen();

    [Test]
    public void RingSession_Xsa155_SlotRewrittenAfterPublishOnRealXen_HooksSeeValidatedCopy()
    {
        InterceptingGrantMapper? mapper = null;
        using var rig = XenAdvisoryRig.Start(wrapMapper: m => mapper = new InterceptingGrantMapper(m));
        var hostile = rig.Connect("xvds");
        var pages = hostile.Grant(3, writable: true);
        uint refA = pages.Reference(0), refB = pages.Reference(1), foreign = pages.Reference(2);
        HostileEdits.FillPattern(XenRawFrontend.Page(pages, 0), 0x11);
        HostileEdits.FillPattern(XenRawFrontend.Page(pages, 1), 0x22);
        int rewrites = 0;
        // The guest rewrites every slot between the backend's fetch and its use: when the data is mapped...
        mapper!.AfterMap = (refs, _) =>
        {
            if (!refs.Contains(refA)) return;
            hostile.EditEverySlot(slot => HostileEdits.Garble(slot, hostile.Layout, foreign));
            Interlocked.Increment(ref rewrites);
        };
        // ...and again while the hooks look at the request.
        var seen = new ConcurrentQueue<Seen>();
        rig.Inspect = r =>
        {
            seen.Enqueue(Snapshot(r));
            hostile.EditEverySlot(slot => HostileEdits.Garble(slot, hostile.Layout, foreign));
            return HookResult.Pass;
        };

        var request = XenAdvisoryRig.Rw(BlkifOperation.Write, 100, new BlkifSegment(refA, 0, 7), new BlkifSegment(refB, 2, 5));
        var response = hostile.Submit(request, "the write's response");

        Assert.That(rewrites, Is.EqualTo(1), "the guest rewrote the slot once the backend had fetched it");
        Assert.That(response.Status, Is.EqualTo(BlkifStatus.Okay));
        Assert.That(response.Operation, Is.EqualTo(BlkifOperation.Write));
        Assert.That(seen.Single().Same(new Seen(100, 2, [4096, 2048], 6144)), Is.True, $"the hooks saw the validated copy, not {seen.Single()}");
        var expected = XenRawFrontend.Page(pages, 0).ToArray().Concat(XenRawFrontend.Page(pages, 1).Slice(2 * 512, 4 * 512).ToArray()).ToArray();
        var onDisk = new byte[expected.Length];
        Assert.That(rig.Disk.Read(100, onDisk), Is.EqualTo(BlkifStatus.Okay));
        Assert.That(onDisk, Is.EqualTo(expected), "the data went where the validated copy said");
        Assert.That(rig.Crashes, Is.Empty);
    }

    [Test]
    public void RingSession_Xsa155_IndirectPageRewrittenAfterReadOnRealXen_HooksSeeValidatedCopy()
    {
        InterceptingGrantMapper? mapper = null;
        using var rig = XenAdvisoryRig.Start(wrapMapper: m => mapper = new InterceptingGrantMapper(m));
        var hostile = rig.Connect("xvdt");
        // Read-only grants: gntdev maps the guest's very pages, so a second read of the descriptor page would see
        // the rewrite (the guest writes through its own gntalloc mapping).
        var descriptorGrant = hostile.Grant(1, writable: false);
        var data = hostile.Grant(3, writable: false);
        var foreignGrant = hostile.Grant(1, writable: true);
        uint descriptorRef = descriptorGrant.Reference(0), foreign = foreignGrant.Reference(0);
        var descriptors = XenRawFrontend.Page(descriptorGrant, 0);
        for (int i = 0; i < 3; i++) HostileEdits.FillPattern(XenRawFrontend.Page(data, i), (byte)(0x40 + i));
        BlkifSegment[] segments = [new(data.Reference(0), 1, 7), new(data.Reference(1), 0, 7), new(data.Reference(2), 0, 2)];
        for (int i = 0; i < segments.Length; i++) HostileEdits.WriteDescriptor(XenRawFrontend.Page(descriptorGrant, 0), i, segments[i]);

        long descriptorHandle = 0;
        int rewrites = 0;
        void Rewrite()
        {
            // NOTE: blkif.h blkif_request_indirect: nr_segments is a u16 at offset 2 (not the u8 at 1).
            for (int i = 0; i < 16; i++) HostileEdits.WriteDescriptor(XenRawFrontend.Page(descriptorGrant, 0), i, new BlkifSegment(foreign, 7, 0));
            hostile.EditEverySlot(slot =>
            {
                BinaryPrimitives.WriteUInt16LittleEndian(slot[hostile.Layout.IndirectNrSegments..], 16);
                BinaryPrimitives.WriteUInt64LittleEndian(slot[hostile.Layout.IndirectSector..], ulong.MaxValue - 1);
                BinaryPrimitives.WriteUInt32LittleEndian(slot[hostile.Layout.IndirectGrefs..], foreign);
            });
            Interlocked.Increment(ref rewrites);
        }
        mapper!.AfterMap = (refs, handle) =>
        {
            if (refs.Contains(descriptorRef)) descriptorHandle = handle; // the backend reads the page now: not yet
            else if (refs.Contains(segments[0].GrantRef)) Rewrite();      // validated, about to be used
        };
        mapper.AfterUnmap = handle => { if (handle == descriptorHandle) Rewrite(); }; // done with the page
        var seen = new ConcurrentQueue<Seen>();
        rig.Inspect = r =>
        {
            seen.Enqueue(Snapshot(r));
            Rewrite();
            return HookResult.Pass;
        };

        var request = new BlkifRequest { Operation = BlkifOperation.Indirect, IndirectOperation = BlkifOperation.Write, SegmentCount = 3, Sector = 200 };
        request.IndirectRefs[0] = descriptorRef;
        var response = hostile.Submit(request, "the indirect write's response");

        Assert.That(rewrites, Is.EqualTo(3), "rewritten after the descriptor page was read, when the data was mapped, and in the hook");
        Assert.That(response.Status, Is.EqualTo(BlkifStatus.Okay));
        // NOTE: xen-blkback answers an indirect request with its inner operation (blkback.c, make_response).
        Assert.That(response.Operation, Is.EqualTo(BlkifOperation.Write));
        Assert.That(seen.Single().Same(new Seen(200, 3, [3584, 4096, 1536], 9216)), Is.True, $"the hooks saw the validated copy, not {seen.Single()}");
        var expected = segments.Select((s, i) => XenRawFrontend.Page(data, i).Slice(s.PageOffset, s.ByteCount).ToArray()).SelectMany(b => b).ToArray();
        var onDisk = new byte[expected.Length];
        Assert.That(rig.Disk.Read(200, onDisk), Is.EqualTo(BlkifStatus.Okay));
        Assert.That(onDisk, Is.EqualTo(expected), "the data came from the segments the backend validated");
        Assert.That(mapper.LiveMappings, Is.EqualTo(1), "only the ring stays mapped");
        Assert.That(rig.Crashes, Is.Empty);
    }
}
