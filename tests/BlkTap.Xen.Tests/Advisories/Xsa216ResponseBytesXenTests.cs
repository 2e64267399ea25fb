using BlkTap.Testing.Advisories;
using System.Buffers.Binary;
using BlkTap.Testing;
using NUnit.Framework;

namespace BlkTap.Xen.Tests.Advisories;

/// <summary>
/// XSA-216 on a real dom0: no uninitialised byte ever reaches a response slot. The frontend poisons every entry of its
/// gntalloc ring page after the backend has consumed it; each response the backend then writes through its gntdev
/// mapping defines every byte: id, operation, status, and padding zero. A response lands in the slot of an earlier
/// request that a stolen "plug" keeps unanswered, so the slot holds nothing of the request being answered. Both ABIs.
/// The emulator's twin: tests/BlkTap.Abstractions.Tests/Advisories/Xsa216ResponseBytesTests.cs.
/// </summary>
[TestFixture]
[Category("RequiresXen")]
public sealed class Xsa216ResponseBytesXenTests
{
    private const byte Poison = 0xCC;
    private const ulong PlugSector = 4000;

    [SetUp]
    public void RequireXen() => XenAdvisoryRig.RequireXen();

    [TestCase(BlkifProtocol.X86_64)]
    [TestCase(BlkifProtocol.X86_32)]
    public void RingSession_Xsa216_PoisonedSlotsOnRealXen_EveryResponseByteDefined(BlkifProtocol protocol)
    {
        using var rig = XenAdvisoryRig.Start();
        var guest = rig.Connect(protocol == BlkifProtocol.X86_64 ? "xvdu" : "xvdv", protocol);
        var plugged = new TaskCompletionSource<TapRequest>(TaskCreationOptions.RunContinuationsAsynchronously);
        rig.Inspect = r =>
        {
            if (r.Sector != PlugSector) return HookResult.Pass;
            plugged.TrySetResult(r);
            return HookResult.Stolen;
        };
        var dataGrant = guest.Grant(1, writable: true);
        uint data = dataGrant.Reference(0);
        var descriptorGrant = guest.Grant(1, writable: false);
        HostileEdits.WriteDescriptor(XenRawFrontend.Page(descriptorGrant, 0), 0, new BlkifSegment(data, 0, 7));

        var cases = new List<(string What, BlkifRequest Request, BlkifOperation Op, BlkifStatus Status)>
        {
            ("read", XenAdvisoryRig.Rw(BlkifOperation.Read, 8, new BlkifSegment(data, 0, 7)), BlkifOperation.Read, BlkifStatus.Okay),
            ("write", XenAdvisoryRig.Rw(BlkifOperation.Write, 8, new BlkifSegment(data, 1, 3)), BlkifOperation.Write, BlkifStatus.Okay),
            ("flush", XenAdvisoryRig.Rw(BlkifOperation.FlushDiskCache, 0), BlkifOperation.FlushDiskCache, BlkifStatus.Okay),
            ("discard", new BlkifRequest { Operation = BlkifOperation.Discard, Sector = 16, DiscardSectorCount = 8 }, BlkifOperation.Discard, BlkifStatus.Okay),
            ("12 segments", HostileEdits.TwelveSegmentRead(data), BlkifOperation.Read, BlkifStatus.Error),
            ("unknown op", XenAdvisoryRig.Rw((BlkifOperation)200, 0, new BlkifSegment(data, 0, 7)), (BlkifOperation)200, BlkifStatus.NotSupported),
            ("ungranted", XenAdvisoryRig.Rw(BlkifOperation.Read, 0, new BlkifSegment(data + 5000, 0, 7)), BlkifOperation.Read, BlkifStatus.Error),
            ("past the end", XenAdvisoryRig.Rw(BlkifOperation.Read, (ulong)XenAdvisoryRig.DiskBytes / 512, new BlkifSegment(data, 0, 7)), BlkifOperation.Read, BlkifStatus.Error),
            ("indirect read", HostileEdits.IndirectOf(BlkifOperation.Read, descriptorGrant.Reference(0)), BlkifOperation.Read, BlkifStatus.Okay),
            ("indirect bad op", HostileEdits.IndirectOf((BlkifOperation)9, descriptorGrant.Reference(0)), (BlkifOperation)9, BlkifStatus.Error),
        };
        int checkedResponses = 0;
        foreach (var (what, request, op, status) in cases)
        {
            plugged = new TaskCompletionSource<TapRequest>(TaskCreationOptions.RunContinuationsAsynchronously);
            ulong plugId = guest.Publish(XenAdvisoryRig.Rw(BlkifOperation.Read, PlugSector, new BlkifSegment(data, 0, 7)));
            Assert.That(plugged.Task.Wait(Waits.Deadline), Is.True, $"{what}: the plug request reaching the hook");
            var plug = plugged.Task.Result;
            guest.EditEverySlot(slot => slot.Fill(Poison));

            ulong id = guest.Publish(request);
            var response = guest.NextResponse($"{what}: the response");
            Assert.That((response.Id, response.Operation, response.Status), Is.EqualTo((id, op, status)), what);
            CheckSlot(guest, id, op, status, what);

            guest.EditEverySlot(slot => slot.Fill(Poison));
            plug.Runtime.InjectResponse(plug, BlkifStatus.Okay);
            var answered = guest.NextResponse($"{what}: the plug's response");
            Assert.That(answered.Id, Is.EqualTo(plugId));
            CheckSlot(guest, plugId, BlkifOperation.Read, BlkifStatus.Okay, what + " (plug)");
            checkedResponses += 2;
        }
        Assert.That(checkedResponses, Is.EqualTo(2 * cases.Count));
        Assert.That(rig.Crashes, Is.Empty);
    }

    /// <summary>The slot of the latest response: every byte of the response is a field's value or zero padding.</summary>
    private static void CheckSlot(XenRawFrontend guest, ulong id, BlkifOperation op, BlkifStatus status, string what) =>
        HostileEdits.AssertResponseOnlyFields(guest.Slot(guest.ResponseProducer - 1), guest.Layout, id, op, status, what);


}
