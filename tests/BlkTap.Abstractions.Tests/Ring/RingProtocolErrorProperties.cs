using BlkTap.Testing;
using FsCheck;
using FsCheck.Fluent;
using NUnit.Framework;
using BlkTap.Testing.Generators;

namespace BlkTap.Abstractions.Tests.Ring;

/// <summary>
/// A misbehaving peer writes any index it likes: the ring ends report a protocol error (-1) instead
/// of reading slots that hold no request, overwriting unanswered ones, or inventing responses.
/// </summary>
[TestFixture]
public sealed class RingProtocolErrorProperties
{
    [FsCheck.NUnit.Property(Arbitrary = new[] { typeof(BlkTapArbitraries) }, MaxTest = 500)]
    public void BackRing_FrontendWritesAnyReqProd_ReportsErrorOrAtMostTheFreeSlots(RingGeometry g, byte outstandingSeed, uint reqProdOffset)
    {
        using var memory = new NativeRingMemory(g.Bytes);
        var back = SetUpBackend(g, memory, outstandingSeed, out uint outstanding);
        uint rspProdPvt = back.ResponseProducerPrivate, reqCons = back.RequestConsumer;

        uint reqProd = unchecked(rspProdPvt + reqProdOffset);
        memory.ReqProd = reqProd;
        long n = back.UnconsumedRequests();
        long final = back.FinalCheckForRequests();

        // NOTE: ring.h RING_REQUEST_PROD_OVERFLOW: req_prod - rsp_prod_pvt > size is a protocol error.
        if (unchecked(reqProd - rspProdPvt) > g.EntryCount) Assert.That(n, Is.EqualTo(-1));
        // req_prod anywhere in [req_cons, rsp_prod_pvt + size]: that many requests, exactly.
        if (unchecked(reqProd - reqCons) <= g.EntryCount - outstanding) Assert.That(n, Is.EqualTo((long)unchecked(reqProd - reqCons)));
        Assert.That(n == -1 || (n >= 0 && n <= g.EntryCount - outstanding), Is.True, $"UnconsumedRequests {n} with {outstanding} outstanding");
        Assert.That(final, Is.EqualTo(n), "FinalCheckForRequests agrees");

        // Whatever was reported can be taken and answered without overrunning the ring.
        for (long i = 0; i < n; i++) back.TakeRequest(out _);
        Assert.That(back.Outstanding, Is.LessThanOrEqualTo(g.EntryCount));
    }

    [FsCheck.NUnit.Property(Arbitrary = new[] { typeof(BlkTapArbitraries) }, MaxTest = 500)]
    public void FrontRing_BackendWritesAnyRspProd_ReportsErrorOrAtMostTheOutstandingRequests(RingGeometry g, byte outstandingSeed, uint rspProdOffset)
    {
        using var memory = new NativeRingMemory(g.Bytes);
        memory.InitialiseAt(g.StartIndex);
        var front = new FrontRing(memory.Address, g.Bytes, g.Layout, g.StartIndex);
        uint outstanding = outstandingSeed % (g.EntryCount + 1);
        for (uint i = 0; i < outstanding; i++) front.EnqueueRequest(new BlkifRequest { Operation = BlkifOperation.FlushDiskCache, Id = i });
        front.PushRequestsAndCheckNotify();

        memory.RspProd = unchecked(g.StartIndex + rspProdOffset);
        long n = front.UnconsumedResponses();
        long expected = rspProdOffset <= outstanding ? rspProdOffset : -1;
        Assert.That(n, Is.EqualTo(expected));
        Assert.That(front.FinalCheckForResponses(), Is.EqualTo(expected));
    }

    [TestCase(BlkifProtocol.X86_64, 0, 1u)]
    [TestCase(BlkifProtocol.X86_64, 3, 1u)]
    [TestCase(BlkifProtocol.X86_32, 0, 1000u)]
    [TestCase(BlkifProtocol.X86_32, 2, uint.MaxValue - 300)]
    public void BackRing_ReqProdMoreThanSizeAheadOfResponses_ReturnsMinusOne(BlkifProtocol protocol, int order, uint beyond)
    {
        var g = new RingGeometry(protocol, order, uint.MaxValue - 5);
        using var memory = new NativeRingMemory(g.Bytes);
        var back = SetUpBackend(g, memory, 7, out _);
        memory.ReqProd = unchecked(back.ResponseProducerPrivate + g.EntryCount + beyond);
        Assert.That(back.UnconsumedRequests(), Is.EqualTo(-1));
        Assert.That(back.FinalCheckForRequests(), Is.EqualTo(-1));
    }

    [Test]
    public void BackRing_ReqProdMovedBackBehindReqCons_ReturnsMinusOne()
    {
        // Found by these tests: a req_prod rewound behind req_cons used to read as ~2^32 requests.
        var g = new RingGeometry(BlkifProtocol.X86_64, 0, uint.MaxValue - 1);
        using var memory = new NativeRingMemory(g.Bytes);
        var back = SetUpBackend(g, memory, 4, out uint outstanding);
        Assert.That(outstanding, Is.EqualTo(4));
        memory.ReqProd = unchecked(back.RequestConsumer - 1);
        Assert.That(back.UnconsumedRequests(), Is.EqualTo(-1));
    }

    [Test]
    public void BackRing_TakeRequestWithEverySlotUnanswered_Throws()
    {
        var g = new RingGeometry(BlkifProtocol.X86_64, 0, 0);
        using var memory = new NativeRingMemory(g.Bytes);
        var back = SetUpBackend(g, memory, (byte)g.EntryCount, out uint outstanding);
        Assert.That(outstanding, Is.EqualTo(g.EntryCount));
        Assert.That(() => back.TakeRequest(out _), Throws.InvalidOperationException);
    }

    [Test]
    public void FrontRing_TakeResponseWithNothingOutstanding_Throws()
    {
        using var memory = new NativeRingMemory(BlkifConstants.PageSize);
        var front = new FrontRing(memory.Address, BlkifConstants.PageSize, BlkifLayout.X86_64, initialiseShared: true);
        Assert.That(() => front.TakeResponse(), Throws.InvalidOperationException);
    }

    /// <summary>A back ring at the geometry's start index with some requests taken and not answered.</summary>
    private static BackRing SetUpBackend(RingGeometry g, NativeRingMemory memory, byte outstandingSeed, out uint outstanding)
    {
        memory.InitialiseAt(g.StartIndex);
        var front = new FrontRing(memory.Address, g.Bytes, g.Layout, g.StartIndex);
        var back = new BackRing(memory.Address, g.Bytes, g.Layout, g.StartIndex);
        // Some history first, so the indices have moved (and maybe wrapped).
        for (int i = 0; i < 3; i++)
        {
            front.EnqueueRequest(new BlkifRequest { Operation = BlkifOperation.FlushDiskCache, Id = (ulong)i });
            front.PushRequestsAndCheckNotify();
            back.TakeRequest(out var r);
            back.EnqueueResponse(new BlkifResponse(r.Id, r.Operation, BlkifStatus.Okay));
            back.PushResponsesAndCheckNotify();
            front.TakeResponse();
        }
        outstanding = outstandingSeed % (g.EntryCount + 1);
        for (uint i = 0; i < outstanding; i++) front.EnqueueRequest(new BlkifRequest { Operation = BlkifOperation.FlushDiskCache, Id = i });
        front.PushRequestsAndCheckNotify();
        for (uint i = 0; i < outstanding; i++) back.TakeRequest(out _);
        return back;
    }
}
