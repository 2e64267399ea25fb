using BlkTap.Testing.Advisories;
using System.Buffers.Binary;
using BlkTap.Emulator;
using BlkTap.Testing;
using BlkTap.Testing.Rigs;
using NUnit.Framework;

namespace BlkTap.Abstractions.Tests.Advisories;

/// <summary>
/// XSA-216: no uninitialised byte ever reaches a response slot. The guest poisons every ring entry after the backend
/// has consumed it; each response the backend then writes must define every byte of the response: id, operation,
/// status, and padding zero. A response lands in the slot of an earlier request that a stolen "plug" request keeps
/// unanswered, so the slot holds nothing of the request being answered (whose own id would hide the padding).
/// </summary>
public class Xsa216ResponseBytesTests
{
    private const byte Poison = 0xCC;
    private const ulong PlugSector = 4000;

    private static IEnumerable<TestCaseData> Cases()
    {
        foreach (var protocol in new[] { BlkifProtocol.X86_64, BlkifProtocol.X86_32 })
            yield return new TestCaseData(protocol).SetArgDisplayNames(protocol.ToString());
    }

    [TestCaseSource(nameof(Cases))]
    public async Task RingSession_Xsa216_PoisonedSlots_EveryResponseByteDefined(BlkifProtocol protocol)
    {
        await using var rig = await AdvisoryRig.StartAsync(guests: 1, protocol: protocol);
        var guest = rig.Frontends[0];
        var layout = guest.Layout;
        var plugged = new TaskCompletionSource<TapRequest>(TaskCreationOptions.RunContinuationsAsynchronously);
        rig.Inspect = r =>
        {
            if (r.Sector != PlugSector) return HookResult.Pass;
            plugged.TrySetResult(r);
            return HookResult.Stolen;
        };
        var (_, data) = AdvisoryRig.GrantPage(guest);
        var (descriptors, descriptorRef) = AdvisoryRig.GrantPage(guest, readOnly: true);
        GuestMemory.WriteDescriptor(guest.Domain, descriptors, 0, new BlkifSegment(data, 0, 7));

        var cases = new List<(string What, BlkifRequest Request, BlkifOperation Op, BlkifStatus Status)>
        {
            ("read", AdvisoryRig.Rw(BlkifOperation.Read, 8, new BlkifSegment(data, 0, 7)), BlkifOperation.Read, BlkifStatus.Okay),
            ("write", AdvisoryRig.Rw(BlkifOperation.Write, 8, new BlkifSegment(data, 1, 3)), BlkifOperation.Write, BlkifStatus.Okay),
            ("flush", AdvisoryRig.Rw(BlkifOperation.FlushDiskCache, 0), BlkifOperation.FlushDiskCache, BlkifStatus.Okay),
            ("discard", new BlkifRequest { Operation = BlkifOperation.Discard, Sector = 16, DiscardSectorCount = 8 }, BlkifOperation.Discard, BlkifStatus.Okay),
            ("12 segments", HostileEdits.TwelveSegmentRead(data), BlkifOperation.Read, BlkifStatus.Error),
            ("unknown op", AdvisoryRig.Rw((BlkifOperation)200, 0, new BlkifSegment(data, 0, 7)), (BlkifOperation)200, BlkifStatus.NotSupported),
            ("ungranted", AdvisoryRig.Rw(BlkifOperation.Read, 0, new BlkifSegment(data + 5000, 0, 7)), BlkifOperation.Read, BlkifStatus.Error),
            ("past the end", AdvisoryRig.Rw(BlkifOperation.Read, (ulong)AdvisoryRig.DiskBytes / 512, new BlkifSegment(data, 0, 7)), BlkifOperation.Read, BlkifStatus.Error),
            ("indirect read", HostileEdits.IndirectOf(BlkifOperation.Read, descriptorRef), BlkifOperation.Read, BlkifStatus.Okay),
            ("indirect bad op", HostileEdits.IndirectOf((BlkifOperation)9, descriptorRef), (BlkifOperation)9, BlkifStatus.Error),
        };
        int checkedResponses = 0;
        foreach (var (what, request, op, status) in cases)
        {
            plugged = new TaskCompletionSource<TapRequest>(TaskCreationOptions.RunContinuationsAsynchronously);
            var plugResponse = guest.SubmitRaw(AdvisoryRig.Raw(AdvisoryRig.Rw(BlkifOperation.Read, PlugSector, new BlkifSegment(data, 0, 7)), layout));
            var plug = await Waits.For(plugged.Task, $"{what}: the plug request reaching the hook");
            GuestMemory.EditEverySlot(guest, slot => slot.Fill(Poison));

            var response = await Waits.For(guest.SubmitRaw(AdvisoryRig.Raw(request, layout)), $"{what}: the response");
            Assert.That((response.Operation, response.Status), Is.EqualTo((op, status)), what);
            CheckSlot(guest, response.Id, op, status, what);

            GuestMemory.EditEverySlot(guest, slot => slot.Fill(Poison));
            plug.Runtime.InjectResponse(plug, BlkifStatus.Okay);
            var answered = await Waits.For(plugResponse, $"{what}: the plug's response");
            CheckSlot(guest, answered.Id, BlkifOperation.Read, BlkifStatus.Okay, what + " (plug)");
            checkedResponses += 2;
        }
        Assert.That(checkedResponses, Is.EqualTo(2 * cases.Count));
        Assert.That(rig.Crashes, Is.Empty);
    }

    /// <summary>The slot of the latest response: every byte of the response is a field's value or zero padding.</summary>
    private static void CheckSlot(BlkFront guest, ulong id, BlkifOperation op, BlkifStatus status, string what) =>
        HostileEdits.AssertResponseOnlyFields(GuestMemory.Slot(guest, GuestMemory.ResponseProducer(guest) - 1), guest.Layout, id, op, status, what);


}
