using System.Globalization;
using System.Text;
using BlkTap.Testing;
using BlkTap.Abstractions.Tests.Ring;
using FsCheck;
using FsCheck.Fluent;
using NUnit.Framework;
using BlkTap.Testing.Native;
using BlkTap.Testing.Generators;

namespace BlkTap.Abstractions.Tests.Abi;

/// <summary>
/// Exchanges a real shared ring with a C backend built from Xen's ring.h macros and blkif.h structs
/// (Native/blkif_ring_peer.c), on both ABIs: C# (BlkifCodec through FrontRing) encodes requests of
/// every form, C reads each field through the C structs, answers with struct writes through
/// RING_GET_RESPONSE and RING_PUSH_RESPONSES_AND_CHECK_NOTIFY, and C# decodes the answers. Ring indices
/// start near 2^32, so the traffic wraps on both sides.
/// </summary>
[TestFixture]
public sealed class CRingPeerTests
{
    private static IEnumerable<BlkifProtocol> Abis => [BlkifProtocol.X86_64, BlkifProtocol.X86_32];

    [TestCaseSource(nameof(Abis))]
    public void CBackend_RequestsOfEveryForm_SeesEveryFieldAndAnswersDecodeInCSharp(BlkifProtocol protocol)
    {
        var exe = NativeAbi.Build("blkif_ring_peer.c", protocol);
        var batches =
            from geometry in BlkifGenerators.Geometry
            from count in Gen.Choose(1, (int)geometry.EntryCount)
            from requests in BlkifGenerators.Encodable.Select(e => e.Request).ArrayOf(count)
            select new Batch(geometry with { Protocol = protocol }, requests);
        var seen = new HashSet<BlkifOperation>();
        Prop.ForAll(Arb.From(batches), batch =>
        {
            Exchange(exe, batch);
            foreach (var r in batch.Requests) seen.Add(r.Operation);
        }).Check(Config.QuickThrowOnFailure.WithMaxTest(25));
        Assert.That(seen, Is.SupersetOf(new[] { BlkifOperation.Read, BlkifOperation.Write, BlkifOperation.Discard, BlkifOperation.Indirect }),
            "the batches did not cover every request form");
    }

    /// <summary>Requests to send through one ring.</summary>
    public sealed record Batch(RingGeometry Geometry, BlkifRequest[] Requests)
    {
        /// <inheritdoc />
        public override string ToString() =>
            $"{Geometry} with {Requests.Length} requests:\n  " + string.Join("\n  ", Requests.Select(r => BlkifRequestText.Describe(r)));
    }

    private static void Exchange(string exe, Batch batch)
    {
        var g = batch.Geometry;
        using var memory = new NativeRingMemory(g.Bytes);
        memory.InitialiseAt(g.StartIndex);
        var front = new FrontRing(memory.Address, g.Bytes, g.Layout, g.StartIndex);
        foreach (var r in batch.Requests) front.EnqueueRequest(r);
        Assert.That(front.PushRequestsAndCheckNotify(), Is.True, "a backend that armed req_event must be notified");

        var file = Path.Combine(Path.GetTempPath(), $"blktap-ring-{Guid.NewGuid():N}.bin");
        try
        {
            File.WriteAllBytes(file, memory.Bytes.ToArray());
            var run = Peers.Run(exe, [file, g.PageOrder.ToString(CultureInfo.InvariantCulture), g.StartIndex.ToString(CultureInfo.InvariantCulture)])
                .EnsureSuccess("blkif_ring_peer");
            var expected = new List<string>
            {
                $"size={front.Size}",
                $"unconsumed={batch.Requests.Length}",
            };
            foreach (var r in batch.Requests) expected.Add(CLine(r));
            expected.Add("notify=1");
            expected.Add("more=0");
            Assert.That(run.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries), Is.EqualTo(expected),
                "what the C backend read through Xen's structs");

            File.ReadAllBytes(file).CopyTo(memory.Bytes);
        }
        finally
        {
            File.Delete(file);
        }

        Assert.That(front.UnconsumedResponses(), Is.EqualTo(batch.Requests.Length));
        foreach (var r in batch.Requests)
        {
            var response = front.TakeResponse();
            var status = (BlkifStatus)(short)-(int)(r.Id % 3);
            Assert.That(response, Is.EqualTo(new BlkifResponse(r.Id, r.Operation, status)), BlkifRequestText.Describe(r));
        }
        Assert.That(front.FinalCheckForResponses(), Is.EqualTo(0));
        Assert.That(memory.ReqEvent, Is.EqualTo(unchecked(g.StartIndex + (uint)batch.Requests.Length + 1)),
            "RING_FINAL_CHECK_FOR_REQUESTS in C re-arms req_event at req_cons + 1");
    }

    /// <summary>The line blkif_ring_peer.c prints for a request (its own format, not a Xen one).</summary>
    private static string CLine(in BlkifRequest r)
    {
        var inv = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        switch (r.Operation)
        {
            case BlkifOperation.Discard:
                sb.Append(inv, $"discard id={r.Id} handle={r.Handle} flag={r.DiscardFlags} sector={r.Sector} nr_sectors={r.DiscardSectorCount}");
                break;
            case BlkifOperation.Indirect:
                sb.Append(inv, $"indirect id={r.Id} handle={r.Handle} indirect_op={(byte)r.IndirectOperation} nr_segments={r.SegmentCount} sector={r.Sector} grefs=");
                for (int i = 0; i < BlkifConstants.MaxIndirectPagesPerRequest; i++) sb.Append(inv, $"{(i == 0 ? "" : ",")}{r.IndirectRefs[i]}");
                break;
            default:
                sb.Append(inv, $"rw op={(byte)r.Operation} id={r.Id} handle={r.Handle} nr_segments={r.SegmentCount} sector={r.Sector} seg=");
                for (int i = 0; i < Math.Min(r.SegmentCount, BlkifConstants.MaxSegmentsPerRequest); i++)
                {
                    var s = r.Segments[i];
                    sb.Append(inv, $"{(i == 0 ? "" : " ")}{s.GrantRef}:{s.FirstSector}-{s.LastSector}");
                }
                break;
        }
        return sb.ToString();
    }
}
