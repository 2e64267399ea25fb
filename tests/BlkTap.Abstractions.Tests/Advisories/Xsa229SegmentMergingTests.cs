using System.Collections.Concurrent;
using BlkTap.Emulator;
using BlkTap.Testing;
using BlkTap.Testing.Rigs;
using NUnit.Framework;

namespace BlkTap.Abstractions.Tests.Advisories;

/// <summary>
/// XSA-229: no request or segment merging across grants that are not contiguous. A request's segments name pages
/// out of order, partial pages whose neighbours in memory are other segments' pages, and pages of separate
/// allocations; the tap keeps one segment per descriptor at the granted page's own address, and the data of each
/// segment goes to and comes from exactly its sector range, in the dom0 placement and through the vbd frontend
/// of the interposition placement.
/// </summary>
public class Xsa229SegmentMergingTests
{
    private const ulong Sector = 64;

    /// <summary>A segment: a page of the guest (index into the pages), and its sector range in the page.</summary>
    private static readonly (int Page, byte First, byte Last)[] Layout =
    [
        (3, 2, 5), // ends mid-page: page 4, next in memory, is the next segment
        (4, 0, 7),
        (1, 0, 7),
        (2, 0, 3),
        (6, 4, 7), // a page of another allocation
        (0, 0, 0),
    ];

    private sealed record Seen(int Count, nint[] Addresses, int[] Lengths);

    [TestCase(false, TestName = "RingSession_Xsa229_ScatteredGrants_OneSegmentPerDescriptorAndExactData(dom0)")]
    [TestCase(true, TestName = "RingSession_Xsa229_ScatteredGrants_OneSegmentPerDescriptorAndExactData(interposed)")]
    public async Task RingSession_Xsa229_ScatteredGrants_OneSegmentPerDescriptorAndExactData(bool interposed)
    {
        var seen = new ConcurrentQueue<Seen>();
        var lower = new MemoryBlockDevice(AdvisoryRig.DiskBytes);
        var disk = interposed ? lower : new MemoryBlockDevice(AdvisoryRig.DiskBytes);
        await using var rig = await EmulatorRig.StartAsync(new EmulatorRigOptions { Frontends = 1, BlkbackDevice = interposed ? lower : null }, rt =>
        {
            rt.RegisterRequestHook("inspect", Hook.Request(r =>
            {
                if (r.Sector == Sector) seen.Enqueue(new Seen(r.SegmentCount, r.Segments.ToArray().Select(s => s.Address).ToArray(), r.Segments.ToArray().Select(s => s.Length).ToArray()));
                return HookResult.Pass;
            }));
            if (interposed) return;
            var serve = new BlockDeviceHook(disk);
            rt.RegisterControlHook("mem", serve);
            rt.RegisterRequestHook("mem", serve);
        });
        var guest = rig.Frontends[0];
        var block = guest.Domain.AllocatePages(6); // pages 0..5 are contiguous in memory
        var pages = Enumerable.Range(0, 6).Select(i => block + i * BlkifConstants.PageSize).Append(guest.Domain.AllocatePages()).ToArray();
        var refs = pages.Select(p => guest.Domain.Grants.GrantAccess(guest.BackendDomainId, p, readOnly: false)).ToArray();
        var segments = Layout.Select(s => new BlkifSegment(refs[s.Page], s.First, s.Last)).ToArray();
        int totalBytes = segments.Sum(s => s.ByteCount);

        // Write: the disk must get each segment's own bytes, in descriptor order.
        for (int i = 0; i < pages.Length; i++) GuestMemory.FillPattern(guest.Domain, pages[i], (byte)(0x10 * (i + 1)));
        var expected = Layout.Select(s => guest.Domain.GetPage(pages[s.Page]).Slice(s.First * 512, (s.Last - s.First + 1) * 512).ToArray()).SelectMany(b => b).ToArray();
        var wrote = await Waits.For(guest.SubmitRaw(AdvisoryRig.Raw(AdvisoryRig.Rw(BlkifOperation.Write, Sector, segments), guest.Layout)), "the scattered write");
        Assert.That(wrote.Status, Is.EqualTo(BlkifStatus.Okay));
        var onDisk = new byte[totalBytes];
        Assert.That(disk.Read(Sector, onDisk), Is.EqualTo(BlkifStatus.Okay));
        Assert.That(onDisk, Is.EqualTo(expected), "each segment's bytes, in order, nothing from a neighbouring page");

        // Read: each segment's range gets its part of the disk; everything else in the pages stays as it was.
        for (int i = 0; i < pages.Length; i++) guest.Domain.GetPage(pages[i]).Fill(0xEE);
        var read = await Waits.For(guest.SubmitRaw(AdvisoryRig.Raw(AdvisoryRig.Rw(BlkifOperation.Read, Sector, segments), guest.Layout)), "the scattered read");
        Assert.That(read.Status, Is.EqualTo(BlkifStatus.Okay));
        int offset = 0;
        var touched = pages.Select(_ => new bool[BlkifConstants.PageSize]).ToArray();
        foreach (var s in Layout)
        {
            int len = (s.Last - s.First + 1) * 512;
            Assert.That(guest.Domain.GetPage(pages[s.Page]).Slice(s.First * 512, len).ToArray(), Is.EqualTo(expected.AsSpan(offset, len).ToArray()), $"page {s.Page} sectors {s.First}..{s.Last}");
            Array.Fill(touched[s.Page], true, s.First * 512, len);
            offset += len;
        }
        for (int p = 0; p < pages.Length; p++)
        {
            var page = guest.Domain.GetPage(pages[p]);
            for (int b = 0; b < page.Length; b++)
                if (!touched[p][b] && page[b] != 0xEE) Assert.Fail($"page {p} byte {b} outside every segment was written");
        }

        // The hooks saw one segment per descriptor (never merged), each at its own granted page (a read maps the
        // guest's pages writable: the emulator hands back the pages themselves).
        var all = seen.ToArray();
        Assert.That(all, Has.Length.EqualTo(2));
        foreach (var s in all)
        {
            Assert.That(s.Count, Is.EqualTo(segments.Length), "segments merged or split");
            Assert.That(s.Lengths, Is.EqualTo(segments.Select(x => x.ByteCount).ToArray()));
        }
        Assert.That(all[1].Addresses, Is.EqualTo(Layout.Select(s => pages[s.Page] + s.First * 512).ToArray()), "each segment at its own grant's page");
    }
}
