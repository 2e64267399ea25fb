using System.Globalization;
using BlkTap.Testing;
using NUnit.Framework;
using BlkTap.Testing.Native;

namespace BlkTap.Abstractions.Tests.Abi;

/// <summary>
/// Compiles Native/blkif_layout.c against Xen's own blkif.h and ring.h for each ABI and compares
/// every printed size, offset and constant with the C# side: <see cref="BlkifLayout"/>, the offsets
/// the codec really writes (<see cref="WireProbe"/>), <see cref="SharedRingLayout"/>, the ring
/// objects, the enums and <see cref="BlkifConstants"/>. Every C line must have a C# counterpart and
/// every C# row a C line, so neither side can drift silently.
/// </summary>
[TestFixture]
public sealed class CHeaderLayoutTests
{
    private const byte U8 = 0xA5;
    private const ushort U16 = 0x5AA5;
    private const uint U32 = 0x44332211;
    private const ulong U64 = 0x8877665544332211;

    private sealed record Row(string Name, string Source, Func<BlkifLayout, long> Value);

    private static IEnumerable<BlkifProtocol> Abis => [BlkifProtocol.X86_64, BlkifProtocol.X86_32];

    [TestCaseSource(nameof(Abis))]
    public void CHeaders_EveryConstantSizeAndOffset_MatchesCSharp(BlkifProtocol protocol)
    {
        var exe = NativeAbi.Build("blkif_layout.c", protocol);
        var c = Parse(Peers.Run(exe, []).EnsureSuccess("blkif_layout").StdOut);
        var layout = BlkifLayout.For(protocol);

        var failures = new List<string>();
        var covered = new HashSet<string>();
        foreach (var row in Rows())
        {
            covered.Add(row.Name);
            if (!c.TryGetValue(row.Name, out long expected))
            {
                failures.Add($"{row.Name}: the C program does not print it (C# {row.Source})");
                continue;
            }
            long actual = row.Value(layout);
            if (actual != expected) failures.Add($"{row.Name}: C says {expected}, C# {row.Source} says {actual}");
        }
        foreach (var name in c.Keys)
            if (!covered.Contains(name)) failures.Add($"{name}={c[name]}: no C# counterpart is compared");

        Assert.That(failures, Is.Empty, $"{protocol.ToName()} layout differs from Xen's headers");
        Assert.That(covered, Has.Count.GreaterThanOrEqualTo(50), "the table lost rows");
    }

    [Test]
    public void BlkifOperationEnum_ReservedOne_IsUndefinedAndAnsweredNotSupported()
    {
        // NOTE: blkif.h BLKIF_OP_RESERVED_1 (4) "was a Citrix-only trim": never a valid operation.
        var request = new BlkifRequest { Operation = (BlkifOperation)4, SegmentCount = 1 };
        request.Segments[0] = new BlkifSegment(1, 0, 7);
        var fault = BlkifValidation.Validate(request, 1 << 20, readOnly: false, maxIndirectSegments: 256);
        Assert.That(Enum.IsDefined((BlkifOperation)4), Is.False);
        Assert.That(BlkifValidation.StatusFor(fault), Is.EqualTo(BlkifStatus.NotSupported));
    }

    private static Dictionary<string, long> Parse(string stdout)
    {
        var values = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var line in stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            int eq = line.LastIndexOf('=');
            Assert.That(eq, Is.GreaterThan(0), $"unparsable line '{line}'");
            values.Add(line[..eq], long.Parse(line[(eq + 1)..], CultureInfo.InvariantCulture));
        }
        return values;
    }

    private static IEnumerable<Row> Rows()
    {
        // Constants, the same on both ABIs.
        yield return new("BLKIF_OP_READ", "BlkifOperation.Read", _ => (long)BlkifOperation.Read);
        yield return new("BLKIF_OP_WRITE", "BlkifOperation.Write", _ => (long)BlkifOperation.Write);
        yield return new("BLKIF_OP_WRITE_BARRIER", "BlkifOperation.WriteBarrier", _ => (long)BlkifOperation.WriteBarrier);
        yield return new("BLKIF_OP_FLUSH_DISKCACHE", "BlkifOperation.FlushDiskCache", _ => (long)BlkifOperation.FlushDiskCache);
        yield return new("BLKIF_OP_RESERVED_1", "the one operation byte below Discard that BlkifOperation leaves undefined", _ => FirstUndefinedOperation());
        yield return new("BLKIF_OP_DISCARD", "BlkifOperation.Discard", _ => (long)BlkifOperation.Discard);
        yield return new("BLKIF_OP_INDIRECT", "BlkifOperation.Indirect", _ => (long)BlkifOperation.Indirect);
        yield return new("BLKIF_RSP_OKAY", "BlkifStatus.Okay", _ => (long)BlkifStatus.Okay);
        yield return new("BLKIF_RSP_ERROR", "BlkifStatus.Error", _ => (long)BlkifStatus.Error);
        yield return new("BLKIF_RSP_EOPNOTSUPP", "BlkifStatus.NotSupported", _ => (long)BlkifStatus.NotSupported);
        yield return new("BLKIF_MAX_SEGMENTS_PER_REQUEST", "BlkifConstants.MaxSegmentsPerRequest", _ => BlkifConstants.MaxSegmentsPerRequest);
        yield return new("BLKIF_MAX_SEGMENTS_PER_REQUEST", "BlkifSegmentArray length", _ => SegmentArrayLength());
        yield return new("BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST", "BlkifConstants.MaxIndirectPagesPerRequest", _ => BlkifConstants.MaxIndirectPagesPerRequest);
        yield return new("BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST", "BlkifIndirectRefArray length", _ => IndirectRefArrayLength());
        yield return new("BLKIF_DISCARD_SECURE", "BlkifConstants.DiscardSecure", _ => BlkifConstants.DiscardSecure);
        yield return new("VDISK_CDROM", "VdiskInfo.CdRom", _ => (long)VdiskInfo.CdRom);
        yield return new("VDISK_REMOVABLE", "VdiskInfo.Removable", _ => (long)VdiskInfo.Removable);
        yield return new("VDISK_READONLY", "VdiskInfo.ReadOnly", _ => (long)VdiskInfo.ReadOnly);
        yield return new("segments_per_indirect_frame", "BlkifConstants.SegmentsPerIndirectFrame", _ => BlkifConstants.SegmentsPerIndirectFrame);
        yield return new("sizeof(grant_ref_t)", "codec width of a segment's gref", _ => WireProbe.SegmentField(4, () => new BlkifSegment(U32, 0, 0)) == 0 ? 4 : -1);
        yield return new("sizeof(RING_IDX)", "type of FrontRing.RequestProducerPrivate", _ => System.Runtime.InteropServices.Marshal.SizeOf(typeof(FrontRing).GetProperty(nameof(FrontRing.RequestProducerPrivate))!.PropertyType));

        // struct blkif_request_segment
        yield return new("sizeof(blkif_request_segment)", "BlkifSegment.Size", _ => BlkifSegment.Size);
        yield return new("offsetof(blkif_request_segment,gref)", "EncodeSegment (u32)", _ => WireProbe.SegmentField(4, () => new BlkifSegment(U32, 0, 0)));
        yield return new("offsetof(blkif_request_segment,first_sect)", "EncodeSegment (u8)", _ => WireProbe.SegmentField(1, () => new BlkifSegment(0, U8, 0)));
        yield return new("offsetof(blkif_request_segment,last_sect)", "EncodeSegment (u8)", _ => WireProbe.SegmentField(1, () => new BlkifSegment(0, 0, U8)));

        // struct blkif_request
        var rw = BlkifOperation.Read;
        yield return new("sizeof(blkif_request)", "BlkifLayout.RequestSize", l => l.RequestSize);
        yield return new("offsetof(blkif_request,operation)", "BlkifLayout.Operation", _ => BlkifLayout.Operation);
        yield return new("offsetof(blkif_request,operation)", "EncodeRequest (u8)", l => WireProbe.RequestField(l, rw, 1, (ref BlkifRequest r) => r.Operation = (BlkifOperation)0x7F));
        yield return new("offsetof(blkif_request,nr_segments)", "BlkifLayout.NrSegments", _ => BlkifLayout.NrSegments);
        yield return new("offsetof(blkif_request,nr_segments)", "EncodeRequest (u8)", l => WireProbe.RequestField(l, rw, 1, (ref BlkifRequest r) => r.SegmentCount = U8));
        yield return new("offsetof(blkif_request,handle)", "BlkifLayout.Handle", _ => BlkifLayout.Handle);
        yield return new("offsetof(blkif_request,handle)", "EncodeRequest (u16)", l => WireProbe.RequestField(l, rw, 2, (ref BlkifRequest r) => r.Handle = U16));
        yield return new("offsetof(blkif_request,id)", "BlkifLayout.RequestId", l => l.RequestId);
        yield return new("offsetof(blkif_request,id)", "EncodeRequest (u64)", l => WireProbe.RequestField(l, rw, 8, (ref BlkifRequest r) => r.Id = U64));
        yield return new("offsetof(blkif_request,sector_number)", "BlkifLayout.RequestSector", l => l.RequestSector);
        yield return new("offsetof(blkif_request,sector_number)", "EncodeRequest (u64)", l => WireProbe.RequestField(l, rw, 8, (ref BlkifRequest r) => r.Sector = U64));
        yield return new("offsetof(blkif_request,seg)", "BlkifLayout.RequestSegments", l => l.RequestSegments);
        yield return new("offsetof(blkif_request,seg)", "EncodeRequest seg[0].gref (u32)", l => WireProbe.RequestField(l, rw, 4, (ref BlkifRequest r) => r.Segments[0] = new BlkifSegment(U32, 0, 0), segmentCount: 1));
        yield return new("sizeof(blkif_request)", "EncodeRequest seg[10].last_sect + 3 (end of the last segment)", l => 3 + WireProbe.RequestField(l, rw, 1, (ref BlkifRequest r) => r.Segments[10] = new BlkifSegment(0, 0, U8), segmentCount: 11));

        // struct blkif_request_discard
        var discard = BlkifOperation.Discard;
        yield return new("sizeof(blkif_request_discard)", "BlkifLayout.DiscardSize", l => l.DiscardSize);
        yield return new("offsetof(blkif_request_discard,operation)", "BlkifLayout.Operation", _ => BlkifLayout.Operation);
        yield return new("offsetof(blkif_request_discard,flag)", "EncodeRequest discard flag (u8)", l => WireProbe.RequestField(l, discard, 1, (ref BlkifRequest r) => r.DiscardFlags = U8));
        yield return new("offsetof(blkif_request_discard,handle)", "EncodeRequest discard handle (u16)", l => WireProbe.RequestField(l, discard, 2, (ref BlkifRequest r) => r.Handle = U16));
        yield return new("offsetof(blkif_request_discard,id)", "EncodeRequest discard id (u64)", l => WireProbe.RequestField(l, discard, 8, (ref BlkifRequest r) => r.Id = U64));
        yield return new("offsetof(blkif_request_discard,sector_number)", "EncodeRequest discard sector (u64)", l => WireProbe.RequestField(l, discard, 8, (ref BlkifRequest r) => r.Sector = U64));
        yield return new("offsetof(blkif_request_discard,nr_sectors)", "BlkifLayout.DiscardNrSectors", l => l.DiscardNrSectors);
        yield return new("offsetof(blkif_request_discard,nr_sectors)", "EncodeRequest discard nr_sectors (u64)", l => WireProbe.RequestField(l, discard, 8, (ref BlkifRequest r) => r.DiscardSectorCount = U64));
        yield return new("sizeof(blkif_request_discard)", "end of nr_sectors", l => l.DiscardNrSectors + 8);

        // struct blkif_request_indirect
        var ind = BlkifOperation.Indirect;
        yield return new("sizeof(blkif_request_indirect)", "BlkifLayout.IndirectSize", l => l.IndirectSize);
        yield return new("offsetof(blkif_request_indirect,operation)", "BlkifLayout.Operation", _ => BlkifLayout.Operation);
        yield return new("offsetof(blkif_request_indirect,indirect_op)", "EncodeRequest indirect_op (u8)", l => WireProbe.RequestField(l, ind, 1, (ref BlkifRequest r) => r.IndirectOperation = (BlkifOperation)U8));
        yield return new("offsetof(blkif_request_indirect,nr_segments)", "BlkifLayout.IndirectNrSegments", l => l.IndirectNrSegments);
        yield return new("offsetof(blkif_request_indirect,nr_segments)", "EncodeRequest indirect nr_segments (u16)", l => WireProbe.RequestField(l, ind, 2, (ref BlkifRequest r) => r.SegmentCount = U16));
        yield return new("offsetof(blkif_request_indirect,id)", "BlkifLayout.IndirectId", l => l.IndirectId);
        yield return new("offsetof(blkif_request_indirect,id)", "EncodeRequest indirect id (u64)", l => WireProbe.RequestField(l, ind, 8, (ref BlkifRequest r) => r.Id = U64));
        yield return new("offsetof(blkif_request_indirect,sector_number)", "BlkifLayout.IndirectSector", l => l.IndirectSector);
        yield return new("offsetof(blkif_request_indirect,sector_number)", "EncodeRequest indirect sector (u64)", l => WireProbe.RequestField(l, ind, 8, (ref BlkifRequest r) => r.Sector = U64));
        yield return new("offsetof(blkif_request_indirect,handle)", "BlkifLayout.IndirectHandle", l => l.IndirectHandle);
        yield return new("offsetof(blkif_request_indirect,handle)", "EncodeRequest indirect handle (u16)", l => WireProbe.RequestField(l, ind, 2, (ref BlkifRequest r) => r.Handle = U16));
        yield return new("offsetof(blkif_request_indirect,indirect_grefs)", "BlkifLayout.IndirectGrefs", l => l.IndirectGrefs);
        yield return new("offsetof(blkif_request_indirect,indirect_grefs)", "EncodeRequest indirect_grefs[0] (u32)", l => WireProbe.RequestField(l, ind, 4, (ref BlkifRequest r) => r.IndirectRefs[0] = U32));

        // struct blkif_response
        yield return new("sizeof(blkif_response)", "BlkifLayout.ResponseSize", l => l.ResponseSize);
        yield return new("offsetof(blkif_response,id)", "BlkifLayout.ResponseId", l => l.ResponseId);
        yield return new("offsetof(blkif_response,id)", "EncodeResponse id (u64)", l => WireProbe.ResponseField(l, 8, new BlkifResponse(U64, 0, 0)));
        yield return new("offsetof(blkif_response,operation)", "BlkifLayout.ResponseOperation", l => l.ResponseOperation);
        yield return new("offsetof(blkif_response,operation)", "EncodeResponse operation (u8)", l => WireProbe.ResponseField(l, 1, new BlkifResponse(0, (BlkifOperation)U8, 0)));
        yield return new("offsetof(blkif_response,status)", "BlkifLayout.ResponseStatus", l => l.ResponseStatus);
        yield return new("offsetof(blkif_response,status)", "EncodeResponse status (s16)", l => WireProbe.ResponseField(l, 2, new BlkifResponse(0, 0, (BlkifStatus)unchecked((short)U16))));

        // struct blkif_sring (ring.h DEFINE_RING_TYPES)
        yield return new("sizeof(blkif_sring_entry)", "BlkifLayout.RingEntrySize", l => l.RingEntrySize);
        yield return new("offsetof(blkif_sring,req_prod)", "SharedRingLayout.ReqProd", _ => SharedRingLayout.ReqProd);
        yield return new("offsetof(blkif_sring,req_event)", "SharedRingLayout.ReqEvent", _ => SharedRingLayout.ReqEvent);
        yield return new("offsetof(blkif_sring,rsp_prod)", "SharedRingLayout.RspProd", _ => SharedRingLayout.RspProd);
        yield return new("offsetof(blkif_sring,rsp_event)", "SharedRingLayout.RspEvent", _ => SharedRingLayout.RspEvent);
        yield return new("offsetof(blkif_sring,ring)", "SharedRingLayout.EntriesOffset", _ => SharedRingLayout.EntriesOffset);
        for (int order = 0; order <= BlkifConstants.MaxRingPageOrder; order++)
        {
            int bytes = SharedRingLayout.BytesForOrder(order);
            yield return new($"__CONST_RING_SIZE(blkif,{bytes})", $"SharedRingLayout.EntryCount (order {order})", l => SharedRingLayout.EntryCount(bytes, l.RingEntrySize));
            yield return new($"__RING_SIZE(blkif,{bytes})", $"FrontRing.Size (order {order})", l => RingSizeOf(bytes, l));
            yield return new($"__RING_SIZE(blkif,{bytes})", $"BackRing.Size (order {order})", l => BackRingSizeOf(bytes, l));
        }
    }

    private static long FirstUndefinedOperation()
    {
        for (int b = 0; b < (int)BlkifOperation.Discard; b++)
            if (!Enum.IsDefined((BlkifOperation)b)) return b;
        return -1;
    }

    private static long SegmentArrayLength()
    {
        var array = new BlkifSegmentArray();
        return ((Span<BlkifSegment>)array).Length;
    }

    private static long IndirectRefArrayLength()
    {
        var array = new BlkifIndirectRefArray();
        return ((Span<uint>)array).Length;
    }

    private static long RingSizeOf(int bytes, BlkifLayout layout)
    {
        using var memory = new Ring.NativeRingMemory(bytes);
        return new FrontRing(memory.Address, bytes, layout, initialiseShared: true).Size;
    }

    private static long BackRingSizeOf(int bytes, BlkifLayout layout)
    {
        using var memory = new Ring.NativeRingMemory(bytes);
        return new BackRing(memory.Address, bytes, layout).Size;
    }
}
