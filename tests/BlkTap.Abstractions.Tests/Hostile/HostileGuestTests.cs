using System.Buffers.Binary;
using System.Collections.Concurrent;
using BlkTap.Emulator;
using BlkTap.Testing;
using NUnit.Framework;

namespace BlkTap.Abstractions.Tests.Hostile;

/// <summary>
/// A guest that breaks the rules, next to an honest guest on the same tap: the hostile one gets error
/// responses or its session closed; the honest one notices nothing.
/// </summary>
public class HostileGuestTests
{
    private sealed class Setup : IAsyncDisposable
    {
        public required EmulatorRig Rig;
        public required ConcurrentQueue<string> Diagnostics;
        public required SemaphoreSlim Reported; // released after each diagnostic is queued
        public required ConcurrentQueue<Seen> HookSaw;
        public BlkFront Hostile => Rig.Frontends[0];
        public BlkFront Honest => Rig.Frontends[1];
        public ValueTask DisposeAsync() => Rig.DisposeAsync();
    }

    /// <summary>What a hook saw (requests are pooled: never keep the request itself).</summary>
    private readonly record struct Seen(ushort DomainId, BlkifOperation Operation, ulong Sector);

    private static async Task<Setup> StartAsync(Func<TapRequest, HookResult>? inspect = null)
    {
        var diagnostics = new ConcurrentQueue<string>();
        var reported = new SemaphoreSlim(0);
        var saw = new ConcurrentQueue<Seen>();
        var device = new MemoryBlockDevice(8L << 20);
        // The guests do not claim feature-persistent: these tests revoke a grant right after its request, which a
        // persistent grant (kept mapped until disconnect, blkif.h) would not allow.
        var rig = await EmulatorRig.StartAsync(new EmulatorRigOptions
        {
            Frontends = 2,
            Diagnostics = d => { diagnostics.Enqueue(d.ToString()); reported.Release(); },
            ConfigureFrontend = (_, o) => o.PersistentGrants = false,
        }, rt =>
        {
            rt.RegisterRequestHook("inspect", Hook.Request(r => { saw.Enqueue(new Seen(r.Session.DomainId, r.Operation, r.Sector)); return inspect?.Invoke(r) ?? HookResult.Pass; }));
            var serve = new BlockDeviceHook(device);
            rt.RegisterControlHook("mem", serve);
            rt.RegisterRequestHook("mem", serve);
        });
        return new Setup { Rig = rig, Diagnostics = diagnostics, Reported = reported, HookSaw = saw };
    }

    private static async Task HonestGuestStillWorks(Setup s)
    {
        var results = await new VerifiedWorkload(new WorkloadOptions { OperationsPerFrontend = 200, QueueDepth = 8, SharedDisk = true })
            .RunAsync(s.Rig, [s.Honest]);
        Assert.That(results.Single().Errors + results.Single().Mismatches, Is.Zero, string.Join("; ", results.Single().Problems));
    }

    private static byte[] Raw(BlkifRequest r)
    {
        var bytes = new byte[BlkifLayout.X86_64.RequestSize];
        BlkifCodec.EncodeRequest(r, BlkifLayout.X86_64, bytes);
        return bytes;
    }

    private static uint GrantPage(BlkFront front, bool readOnly = false)
    {
        var page = front.Domain.AllocatePages();
        return front.Domain.Grants.GrantAccess(0, page, readOnly);
    }

    private static BlkifRequest Rw(BlkifOperation op, ulong sector, params BlkifSegment[] segs)
    {
        var r = new BlkifRequest { Operation = op, Sector = sector, SegmentCount = segs.Length };
        for (int i = 0; i < Math.Min(segs.Length, 11); i++) r.Segments[i] = segs[i];
        return r;
    }

    private static IEnumerable<TestCaseData> Malformed()
    {
        yield return new TestCaseData("nr_segments 12", (Func<uint, BlkifRequest>)(g => { var r = Rw(BlkifOperation.Read, 0, new BlkifSegment(g, 0, 7)); r.SegmentCount = 12; return r; }), BlkifStatus.Error);
        yield return new TestCaseData("first_sect > last_sect", (Func<uint, BlkifRequest>)(g => Rw(BlkifOperation.Read, 0, new BlkifSegment(g, 5, 2))), BlkifStatus.Error);
        yield return new TestCaseData("last_sect 8", (Func<uint, BlkifRequest>)(g => Rw(BlkifOperation.Write, 0, new BlkifSegment(g, 0, 8))), BlkifStatus.Error);
        yield return new TestCaseData("unknown op 4", (Func<uint, BlkifRequest>)(g => Rw((BlkifOperation)4, 0, new BlkifSegment(g, 0, 7))), BlkifStatus.NotSupported);
        yield return new TestCaseData("unknown op 200", (Func<uint, BlkifRequest>)(g => Rw((BlkifOperation)200, 0, new BlkifSegment(g, 0, 7))), BlkifStatus.NotSupported);
        yield return new TestCaseData("sector past the end", (Func<uint, BlkifRequest>)(g => Rw(BlkifOperation.Read, (8UL << 20) / 512 - 4, new BlkifSegment(g, 0, 7))), BlkifStatus.Error);
        yield return new TestCaseData("sector overflow", (Func<uint, BlkifRequest>)(g => Rw(BlkifOperation.Read, ulong.MaxValue - 2, new BlkifSegment(g, 0, 7))), BlkifStatus.Error);
        yield return new TestCaseData("read with no segments", (Func<uint, BlkifRequest>)(g => Rw(BlkifOperation.Read, 0)), BlkifStatus.Error);
        yield return new TestCaseData("ungranted reference", (Func<uint, BlkifRequest>)(g => Rw(BlkifOperation.Read, 0, new BlkifSegment(g + 1000, 0, 7))), BlkifStatus.Error);
        yield return new TestCaseData("discard past the end", (Func<uint, BlkifRequest>)(g => new BlkifRequest { Operation = BlkifOperation.Discard, Sector = 10, DiscardSectorCount = ulong.MaxValue }), BlkifStatus.Error);
    }

    [TestCaseSource(nameof(Malformed))]
    public async Task SubmitRaw_MalformedRequest_AnsweredWithoutReachingHooksOrDisk(string what, Func<uint, BlkifRequest> make, BlkifStatus expected)
    {
        await using var s = await StartAsync();
        var gref = GrantPage(s.Hostile);
        // Fill sector 0 with a known pattern through the honest guest, so a stray write would show.
        var pattern = Enumerable.Repeat((byte)0xA5, 4096).ToArray();
        Assert.That(await s.Honest.WriteAsync(0, pattern), Is.EqualTo(BlkifStatus.Okay));
        while (s.HookSaw.TryDequeue(out _)) { }
        var response = await s.Hostile.SubmitRaw(Raw(make(gref)));
        Assert.That(response.Status, Is.EqualTo(expected), what);
        Assert.That(s.HookSaw.Where(r => r.DomainId == s.Hostile.Domain.Id), Is.Empty, "a malformed request reached a hook");
        var back = new byte[4096];
        Assert.That(await s.Honest.ReadAsync(0, back), Is.EqualTo(BlkifStatus.Okay));
        Assert.That(back, Is.EqualTo(pattern));
        Assert.That(s.Hostile.IsBroken, Is.False, "a malformed request must not break the session");
        await HonestGuestStillWorks(s);
    }

    [Test]
    public async Task RequestProducer_FarAhead_ClosesOnlyThatSession()
    {
        await using var s = await StartAsync();
        var ring = s.Hostile.Ring!;
        unsafe
        {
            // req_prod jumps 1000 entries past what the ring can hold.
            ref uint reqProd = ref *(uint*)ring.Address;
            Volatile.Write(ref reqProd, ring.RequestProducerPrivate + 1000);
        }
        s.Hostile.EventChannel!.Notify();
        Waits.ForSignal(s.Reported, () => s.Diagnostics.Any(d => d.Contains("protocol error")), "the protocol error's diagnostic");
        Assert.That(s.Diagnostics.Any(d => d.Contains("protocol error") && d.Contains($"dom{s.Hostile.Domain.Id}")), Is.True, string.Join("\n", s.Diagnostics));
        Assert.That(Waits.OnLoop(s.Rig.Runtime, () => s.Rig.Runtime.Sessions.Select(x => x.DomainId).ToList()), Does.Not.Contain(s.Hostile.Domain.Id), "read on the loop, after the pass that reported");
        await HonestGuestStillWorks(s);
    }

    [Test]
    public async Task RingSlot_RewrittenAfterTake_HooksAndResponseUseTheFirstCopy()
    {
        BlkFront? hostile = null;
        var rewritten = 0;
        await using var s = await StartAsync(r =>
        {
            if (hostile == null || r.Session.DomainId != hostile.Domain.Id || r.Operation != BlkifOperation.Write) return HookResult.Pass;
            // The guest rewrites the slot it pushed: a double fetch would now see garbage.
            var ring = hostile.Ring!;
            unsafe
            {
                for (uint i = 0; i < ring.Size; i++)
                {
                    var slot = new Span<byte>((byte*)ring.Address + SharedRingLayout.EntriesOffset + i * ring.Layout.RingEntrySize, ring.Layout.RequestSize);
                    slot[BlkifLayout.NrSegments] = 255;
                    BinaryPrimitives.WriteUInt64LittleEndian(slot[ring.Layout.RequestSector..], ulong.MaxValue);
                    slot[ring.Layout.RequestSegments + 5] = 200; // last_sect
                }
            }
            Interlocked.Increment(ref rewritten);
            return HookResult.Pass;
        });
        hostile = s.Hostile;
        var data = Enumerable.Range(0, 8192).Select(i => (byte)(i * 7)).ToArray();
        Assert.That(await s.Hostile.WriteAsync(64, data), Is.EqualTo(BlkifStatus.Okay));
        Assert.That(rewritten, Is.GreaterThan(0));
        var back = new byte[8192];
        Assert.That(await s.Honest.ReadAsync(64, back), Is.EqualTo(BlkifStatus.Okay));
        Assert.That(back, Is.EqualTo(data), "the write landed where the first copy said, with the first copy's segments");
        Assert.That(s.HookSaw.Where(r => r.DomainId == s.Hostile.Domain.Id).Select(r => r.Sector).Distinct(), Is.EqualTo(new ulong[] { 64 }).Or.EqualTo(new ulong[] { 64, 72 }));
    }

    [Test]
    public async Task EndAccess_WhileStolenRequestHoldsMapping_FailsUntilResponse()
    {
        var stolen = new TaskCompletionSource<TapRequest>(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var s = await StartAsync(r =>
        {
            if (r.Operation == BlkifOperation.Read && r.Sector == 4096) { stolen.TrySetResult(r); return HookResult.Stolen; }
            return HookResult.Pass;
        });
        var page = s.Hostile.Domain.AllocatePages();
        var gref = s.Hostile.Domain.Grants.GrantAccess(0, page, readOnly: false);
        var pending = s.Hostile.SubmitRaw(Raw(Rw(BlkifOperation.Read, 4096, new BlkifSegment(gref, 0, 7))));
        var r = await stolen.Task.WaitAsync(Waits.Deadline);
        Assert.That(s.Hostile.Domain.Grants.EndAccess(gref), Is.False, "the backend still maps the page: revoking must fail, as in Xen");
        r.Runtime.InjectResponse(r, BlkifStatus.Okay);
        Assert.That((await pending).Status, Is.EqualTo(BlkifStatus.Okay));
        var deadline = DateTime.UtcNow + Waits.Deadline;
        while (s.Hostile.Domain.Grants.MapCount(gref) != 0 && DateTime.UtcNow < deadline) await Task.Delay(5);
        Assert.That(s.Hostile.Domain.Grants.EndAccess(gref), Is.True, "after the response the mapping is gone");
    }

    [Test]
    public async Task ReadIntoReadOnlyGrant_AnsweredErrorAndPageUntouched()
    {
        await using var s = await StartAsync();
        var page = s.Hostile.Domain.AllocatePages();
        s.Hostile.Domain.GetPage(page).Fill(0x11);
        var gref = s.Hostile.Domain.Grants.GrantAccess(0, page, readOnly: true);
        var response = await s.Hostile.SubmitRaw(Raw(Rw(BlkifOperation.Read, 0, new BlkifSegment(gref, 0, 7))));
        Assert.That(response.Status, Is.EqualTo(BlkifStatus.Error));
        Assert.That(s.Hostile.Domain.GetPage(page).ToArray(), Is.All.EqualTo(0x11));
    }
}
