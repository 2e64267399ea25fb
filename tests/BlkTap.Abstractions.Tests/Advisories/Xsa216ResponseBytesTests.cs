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
            ("12 segments", Twelve(data), BlkifOperation.Read, BlkifStatus.Error),
            ("unknown op", AdvisoryRig.Rw((BlkifOperation)200, 0, new BlkifSegment(data, 0, 7)), (BlkifOperation)200, BlkifStatus.NotSupported),
            ("ungranted", AdvisoryRig.Rw(BlkifOperation.Read, 0, new BlkifSegment(data + 5000, 0, 7)), BlkifOperation.Read, BlkifStatus.Error),
            ("past the end", AdvisoryRig.Rw(BlkifOperation.Read, (ulong)AdvisoryRig.DiskBytes / 512, new BlkifSegment(data, 0, 7)), BlkifOperation.Read, BlkifStatus.Error),
            ("indirect read", Indirect(BlkifOperation.Read, descriptorRef), BlkifOperation.Read, BlkifStatus.Okay),
            ("indirect bad op", Indirect((BlkifOperation)9, descriptorRef), (BlkifOperation)9, BlkifStatus.Error),
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
    private static void CheckSlot(BlkFront guest, ulong id, BlkifOperation op, BlkifStatus status, string what)
    {
        var layout = guest.Layout;
        var bytes = GuestMemory.Slot(guest, GuestMemory.ResponseProducer(guest) - 1)[..layout.ResponseSize].ToArray();
        // NOTE: blkif.h struct blkif_response: id u64 @0, operation u8 @8, (pad) @9, status i16 @10; 16 bytes on
        // x86_64 (4 bytes of tail padding), 12 on x86_32 (no tail padding). The pads are where XSA-216 leaked.
        Assert.That(BinaryPrimitives.ReadUInt64LittleEndian(bytes.AsSpan(layout.ResponseId)), Is.EqualTo(id), $"{what}: id");
        Assert.That(bytes[layout.ResponseOperation], Is.EqualTo((byte)op), $"{what}: operation");
        Assert.That(BinaryPrimitives.ReadInt16LittleEndian(bytes.AsSpan(layout.ResponseStatus)), Is.EqualTo((short)status), $"{what}: status");
        for (int i = 0; i < bytes.Length; i++)
        {
            bool field = (i >= layout.ResponseId && i < layout.ResponseId + 8) || i == layout.ResponseOperation
                || (i >= layout.ResponseStatus && i < layout.ResponseStatus + 2);
            if (!field) Assert.That(bytes[i], Is.Zero, $"{what}: padding byte {i} of the {layout.Protocol} response: {Convert.ToHexString(bytes)}");
        }
    }

    private static BlkifRequest Twelve(uint gref)
    {
        var r = AdvisoryRig.Rw(BlkifOperation.Read, 0, new BlkifSegment(gref, 0, 7));
        r.SegmentCount = 12;
        return r;
    }

    private static BlkifRequest Indirect(BlkifOperation inner, uint descriptorRef)
    {
        var r = new BlkifRequest { Operation = BlkifOperation.Indirect, IndirectOperation = inner, SegmentCount = 1, Sector = 24 };
        r.IndirectRefs[0] = descriptorRef;
        return r;
    }
}
