using System.Buffers.Binary;
using System.Collections.Concurrent;
using BlkTap.Testing;
using BlkTap.Testing.Advisories;
using BlkTap.Testing.Rigs;
using NUnit.Framework;

namespace BlkTap.Abstractions.Tests.Advisories;

/// <summary>
/// XSA-155 (double fetch): the backend copies a request, and every indirect page, out of shared memory once. A guest
/// that rewrites the slot or the descriptor page after publishing (here: at the moment the backend maps the
/// request's data, at the moment it unmaps the descriptor page, and while the hooks run) changes neither what was
/// validated nor what the hooks see nor where the data goes.
/// </summary>
public class Xsa155DoubleFetchTests
{
    /// <summary>What the hook saw of one request (requests are pooled: never keep the request itself).</summary>
    private sealed record Seen(ulong Sector, int SegmentCount, int[] Lengths, int Bytes);

    private static Seen Snapshot(TapRequest r) =>
        new(r.Sector, r.SegmentCount, r.Segments.ToArray().Select(s => s.Length).ToArray(), r.ByteCount);

    [Test]
    public async Task RingSession_Xsa155_SlotRewrittenAfterPublish_HooksSeeValidatedCopy()
    {
        InterceptingGrantMapper? mapper = null;
        await using var rig = await AdvisoryRig.StartAsync(wrapMapper: m => mapper = new InterceptingGrantMapper(m));
        var hostile = rig.Frontends[0];
        var (pageA, refA) = AdvisoryRig.GrantPage(hostile);
        var (pageB, refB) = AdvisoryRig.GrantPage(hostile);
        var (_, foreign) = AdvisoryRig.GrantPage(hostile);
        GuestMemory.FillPattern(hostile.Domain, pageA, 0x11);
        GuestMemory.FillPattern(hostile.Domain, pageB, 0x22);
        int rewrites = 0;
        // The guest rewrites every slot between the backend's fetch and its use: when the data is mapped...
        mapper!.AfterMap = (refs, _) =>
        {
            if (!refs.Contains(refA)) return;
            GuestMemory.EditEverySlot(hostile, slot => GuestMemory.Garble(slot, hostile.Layout, foreign));
            Interlocked.Increment(ref rewrites);
        };
        // ...and again while the hooks look at the request.
        var seen = new ConcurrentQueue<Seen>();
        rig.Inspect = r =>
        {
            if (r.Session.DomainId != hostile.Domain.Id) return HookResult.Pass;
            seen.Enqueue(Snapshot(r));
            GuestMemory.EditEverySlot(hostile, slot => GuestMemory.Garble(slot, hostile.Layout, foreign));
            return HookResult.Pass;
        };

        var request = AdvisoryRig.Rw(BlkifOperation.Write, 100, new BlkifSegment(refA, 0, 7), new BlkifSegment(refB, 2, 5));
        var response = await Waits.For(hostile.SubmitRaw(AdvisoryRig.Raw(request, hostile.Layout)), "the write's response");

        Assert.That(rewrites, Is.EqualTo(1), "the guest rewrote the slot once the backend had fetched it");
        Assert.That(response.Status, Is.EqualTo(BlkifStatus.Okay));
        Assert.That(response.Operation, Is.EqualTo(BlkifOperation.Write));
        Assert.That(seen.Single(), Is.EqualTo(new Seen(100, 2, [4096, 2048], 6144)).Using<Seen>(SameSeen), "the hooks saw the validated copy");
        var expected = hostile.Domain.GetPage(pageA).ToArray().Concat(hostile.Domain.GetPage(pageB).Slice(2 * 512, 4 * 512).ToArray()).ToArray();
        var onDisk = new byte[expected.Length];
        Assert.That(rig.Disk.Read(100, onDisk), Is.EqualTo(BlkifStatus.Okay));
        Assert.That(onDisk, Is.EqualTo(expected), "the data went where the validated copy said");
        Assert.That(rig.Crashes, Is.Empty);
    }

    [Test]
    public async Task RingSession_Xsa155_IndirectPageRewrittenAfterRead_HooksSeeValidatedCopy()
    {
        InterceptingGrantMapper? mapper = null;
        // Zero-copy read-only grants: the backend's mapping of the descriptor page aliases the guest's page, so a
        // second read of it would see the rewrite.
        await using var rig = await AdvisoryRig.StartAsync(protectReadOnlyGrants: false, wrapMapper: m => mapper = new InterceptingGrantMapper(m));
        var hostile = rig.Frontends[0];
        var (descriptors, descriptorRef) = AdvisoryRig.GrantPage(hostile, readOnly: true);
        var data = Enumerable.Range(0, 3).Select(_ => AdvisoryRig.GrantPage(hostile, readOnly: true)).ToArray();
        var (_, foreign) = AdvisoryRig.GrantPage(hostile);
        for (int i = 0; i < data.Length; i++) GuestMemory.FillPattern(hostile.Domain, data[i].Page, (byte)(0x40 + i));
        BlkifSegment[] segments = [new(data[0].Ref, 1, 7), new(data[1].Ref, 0, 7), new(data[2].Ref, 0, 2)];
        for (int i = 0; i < segments.Length; i++) GuestMemory.WriteDescriptor(hostile.Domain, descriptors, i, segments[i]);

        long descriptorHandle = 0;
        int rewrites = 0;
        void Rewrite()
        {
            // NOTE: blkif.h blkif_request_indirect: nr_segments is a u16 at offset 2 (not the u8 at 1).
            for (int i = 0; i < 16; i++) GuestMemory.WriteDescriptor(hostile.Domain, descriptors, i, new BlkifSegment(foreign, 7, 0));
            GuestMemory.EditEverySlot(hostile, slot =>
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
            else if (refs.Contains(data[0].Ref)) Rewrite();               // validated, about to be used
        };
        mapper.AfterUnmap = handle => { if (handle == descriptorHandle) Rewrite(); }; // done with the page
        var seen = new ConcurrentQueue<Seen>();
        rig.Inspect = r =>
        {
            if (r.Session.DomainId != hostile.Domain.Id) return HookResult.Pass;
            seen.Enqueue(Snapshot(r));
            Rewrite();
            return HookResult.Pass;
        };

        var request = new BlkifRequest { Operation = BlkifOperation.Indirect, IndirectOperation = BlkifOperation.Write, SegmentCount = 3, Sector = 200 };
        request.IndirectRefs[0] = descriptorRef;
        var response = await Waits.For(hostile.SubmitRaw(AdvisoryRig.Raw(request, hostile.Layout)), "the indirect write's response");

        Assert.That(rewrites, Is.EqualTo(3), "rewritten after the descriptor page was read, when the data was mapped, and in the hook");
        Assert.That(response.Status, Is.EqualTo(BlkifStatus.Okay));
        // NOTE: xen-blkback answers an indirect request with its inner operation (blkback.c, make_response).
        Assert.That(response.Operation, Is.EqualTo(BlkifOperation.Write));
        Assert.That(seen.Single(), Is.EqualTo(new Seen(200, 3, [3584, 4096, 1536], 9216)).Using<Seen>(SameSeen), "the hooks saw the validated copy");
        var expected = segments.Select((s, i) => hostile.Domain.GetPage(data[i].Page).Slice(s.PageOffset, s.ByteCount).ToArray()).SelectMany(b => b).ToArray();
        var onDisk = new byte[expected.Length];
        Assert.That(rig.Disk.Read(200, onDisk), Is.EqualTo(BlkifStatus.Okay));
        Assert.That(onDisk, Is.EqualTo(expected), "the data came from the segments the backend validated");
        Assert.That(mapper.LiveMappings, Is.EqualTo(2), "only the two guests' rings stay mapped");
        Assert.That(rig.Crashes, Is.Empty);
    }

    private static bool SameSeen(Seen a, Seen b) =>
        a.Sector == b.Sector && a.SegmentCount == b.SegmentCount && a.Bytes == b.Bytes && a.Lengths.SequenceEqual(b.Lengths);
}
