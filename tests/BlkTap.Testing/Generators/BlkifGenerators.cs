using FsCheck;
using FsCheck.Fluent;

namespace BlkTap.Testing.Generators;

/// <summary>
/// FsCheck 3 generators for the blkif wire protocol: requests of every form (valid, and malformed
/// with one known fault), raw ring slots, ring geometries with indices about to wrap. Compose them
/// with FsCheck's LINQ operators, or use <see cref="BlkTapArbitraries"/> to get them by parameter type.
/// </summary>
/// <remarks>
/// Thread-safe: generators are immutable values. The rules encoded here (which fault a request has)
/// follow xen/include/public/io/blkif.h: nr_segments 1..11 for read/write (0 allowed for barrier and
/// flush), 0 ≤ first_sect ≤ last_sect ≤ 7, the request within the disk, no writes to a read-only disk.
/// </remarks>
public static class BlkifGenerators
{
    private static readonly BlkifOperation[] SegmentOps =
        [BlkifOperation.Read, BlkifOperation.Write, BlkifOperation.WriteBarrier, BlkifOperation.FlushDiskCache];

    /// <summary>Either ABI.</summary>
    public static Gen<BlkifProtocol> Protocol { get; } = Gen.Elements(BlkifProtocol.X86_64, BlkifProtocol.X86_32);

    /// <summary>Uniform 32-bit values.</summary>
    public static Gen<uint> UInt32Uniform { get; } =
        Gen.Choose(0, 0xFFFF).SelectMany(_ => Gen.Choose(0, 0xFFFF), (hi, lo) => ((uint)hi << 16) | (uint)lo);

    /// <summary>Uniform 64-bit values.</summary>
    public static Gen<ulong> UInt64Uniform { get; } =
        UInt32Uniform.SelectMany(_ => UInt32Uniform, (hi, lo) => ((ulong)hi << 32) | lo);

    /// <summary>64-bit values biased to the edges: 0, small, near 2^32, near 2^64, and uniform.</summary>
    public static Gen<ulong> UInt64Edgy { get; } = Gen.Frequency(
        (1, Gen.Constant(0UL)),
        (3, Gen.Choose(1, 4096).Select(i => (ulong)i)),
        (1, Gen.Choose(0, 64).Select(i => (1UL << 32) - 32 + (ulong)i)),
        (2, Gen.Choose(0, 64).Select(i => ulong.MaxValue - (ulong)i)),
        (3, UInt64Uniform));

    /// <summary>A value in [0, <paramref name="max"/>], biased to both ends.</summary>
    public static Gen<ulong> UpTo(ulong max) => Gen.Frequency(
        (1, Gen.Constant(0UL)),
        (1, Gen.Constant(max)),
        (1, Gen.Choose(0, 16).Select(i => max - Math.Min(max, (ulong)i))),
        (1, Gen.Choose(0, 16).Select(i => Math.Min(max, (ulong)i))),
        (4, UInt64Uniform.Select(v => max == ulong.MaxValue ? v : v % (max + 1))));

    /// <summary>A value in [<paramref name="min"/>, ulong.MaxValue].</summary>
    public static Gen<ulong> AtLeast(ulong min) => UpTo(ulong.MaxValue - min).Select(v => min + v);

    /// <summary>Disk sizes in sectors: tiny, ordinary, 2^32-ish, and up to ulong.MaxValue (overflow edges).</summary>
    public static Gen<ulong> DiskSectors { get; } = Gen.Frequency(
        (2, Gen.Choose(0, 256).Select(i => (ulong)i)),
        (4, Gen.Choose(1, 1 << 24).Select(i => (ulong)i)),
        (1, Gen.Choose(0, 1024).Select(i => (1UL << 32) - 512 + (ulong)i)),
        (1, Gen.Choose(0, 1024).Select(i => ulong.MaxValue - (ulong)i)),
        (2, UInt64Uniform));

    /// <summary>Operation bytes no blkif backend knows: BLKIF_OP_RESERVED_1 (4) and 7..255.</summary>
    public static Gen<BlkifOperation> UnknownOperation { get; } = Gen.Frequency(
        (1, Gen.Constant((BlkifOperation)4)),
        (4, Gen.Choose(7, 255).Select(i => (BlkifOperation)i)));

    /// <summary>Any operation byte, weighted to the known ones.</summary>
    public static Gen<BlkifOperation> AnyOperation { get; } = Gen.Frequency(
        (6, Gen.Elements(BlkifOperation.Read, BlkifOperation.Write, BlkifOperation.WriteBarrier,
            BlkifOperation.FlushDiskCache, BlkifOperation.Discard, BlkifOperation.Indirect)),
        (2, UnknownOperation));

    /// <summary>A valid segment: any grant reference, 0 ≤ first ≤ last ≤ 7.</summary>
    public static Gen<BlkifSegment> ValidSegment { get; } =
        from gref in UInt32Uniform
        from first in Gen.Choose(0, 7)
        from last in Gen.Choose(first, 7)
        select new BlkifSegment(gref, (byte)first, (byte)last);

    /// <summary>A segment with first &gt; last or last &gt; 7.</summary>
    public static Gen<BlkifSegment> InvalidSegment { get; } = Gen.OneOf(
        from gref in UInt32Uniform
        from first in Gen.Choose(1, 255)
        from last in Gen.Choose(0, first - 1)
        select new BlkifSegment(gref, (byte)first, (byte)last),
        from gref in UInt32Uniform
        from last in Gen.Choose(8, 255)
        from first in Gen.Choose(0, last)
        select new BlkifSegment(gref, (byte)first, (byte)last));

    /// <summary>Any segment: first and last anywhere in 0..255.</summary>
    public static Gen<BlkifSegment> AnySegment { get; } =
        from gref in UInt32Uniform
        from first in Gen.Choose(0, 255)
        from last in Gen.Choose(0, 255)
        select new BlkifSegment(gref, (byte)first, (byte)last);

    /// <summary>A segment-form request (the operation need not be a segment op).</summary>
    public static Gen<BlkifRequest> SegmentForm(Gen<BlkifOperation> op, Gen<int> count, Gen<BlkifSegment> segment, Gen<ulong> sector) =>
        from o in op
        from n in count
        from segs in segment.ArrayOf(Math.Min(n, BlkifConstants.MaxSegmentsPerRequest))
        from s in sector
        from id in UInt64Uniform
        from handle in Gen.Choose(0, ushort.MaxValue)
        select MakeSegmentForm(o, n, segs, s, id, (ushort)handle);

    /// <summary>A discard request with the given sector and sector count generators.</summary>
    public static Gen<BlkifRequest> DiscardForm(Gen<ulong> sector, Gen<ulong> count) =>
        from s in sector
        from c in count
        from flag in Gen.Frequency((3, Gen.Elements<byte>(0, BlkifConstants.DiscardSecure)), (1, Gen.Choose(0, 255).Select(b => (byte)b)))
        from id in UInt64Uniform
        from handle in Gen.Choose(0, ushort.MaxValue)
        select new BlkifRequest
        {
            Operation = BlkifOperation.Discard, DiscardFlags = flag, Id = id, Handle = (ushort)handle,
            Sector = s, DiscardSectorCount = c,
        };

    /// <summary>An indirect request with the given inner operation and segment count generators.</summary>
    public static Gen<BlkifRequest> IndirectForm(Gen<BlkifOperation> innerOp, Gen<int> count) =>
        from inner in innerOp
        from n in count
        from refs in UInt32Uniform.ArrayOf(BlkifConstants.MaxIndirectPagesPerRequest)
        from s in UInt64Edgy
        from id in UInt64Uniform
        from handle in Gen.Choose(0, ushort.MaxValue)
        select MakeIndirect(inner, n, refs, s, id, (ushort)handle);

    /// <summary>Requests that survive an encode/decode round trip, any form, any ABI.</summary>
    public static Gen<EncodableRequest> Encodable { get; } =
        from protocol in Protocol
        from request in Gen.Frequency(
            (4, SegmentForm(Gen.Frequency((4, Gen.Elements(SegmentOps)), (1, UnknownOperation)),
                Gen.Frequency((4, Gen.Choose(0, 11)), (1, Gen.Choose(12, 255))), AnySegment, UInt64Edgy)),
            (2, DiscardForm(UInt64Edgy, UInt64Edgy)),
            (2, IndirectForm(Gen.Choose(0, 255).Select(b => (BlkifOperation)b),
                Gen.Frequency((3, Gen.Choose(0, 4096)), (1, Gen.Choose(0, ushort.MaxValue))))))
        select new EncodableRequest(protocol, request);

    /// <summary>Valid requests of every form, with a disk they fit.</summary>
    public static Gen<RequestCase> ValidCase { get; } = Gen.Frequency(
        (5, ValidSegmentCase()),
        (2, from ro in Gen.Constant(false)
            from disk in DiskSectors
            from sector in UpTo(disk)
            from req in DiscardForm(Gen.Constant(sector), UpTo(disk - sector))
            select new RequestCase(req, disk, ro, 0, RequestFault.None, "valid discard")),
        (2, from ro in ArbBool
            from max in MaxIndirect(1)
            from req in IndirectForm(ro ? Gen.Constant(BlkifOperation.Read) : Gen.Elements(BlkifOperation.Read, BlkifOperation.Write),
                Gen.Choose(1, max))
            from disk in DiskSectors
            select new RequestCase(req, disk, ro, max, RequestFault.None, "valid indirect")));

    /// <summary>Requests with exactly one fault, of every kind <see cref="RequestFault"/> names.</summary>
    public static Gen<RequestCase> MalformedCase { get; } = Gen.OneOf(
        TooManySegments(), ZeroSegments(), BadSegmentCase(), SegmentOutOfRange(), DiscardOutOfRange(),
        ReadOnlyCase(), UnknownOperationCase(), BadIndirectOperationCase(), BadIndirectCountCase());

    /// <summary>Valid and malformed requests, about half each.</summary>
    public static Gen<RequestCase> AnyCase { get; } = Gen.OneOf(ValidCase, MalformedCase);

    /// <summary>Raw request slots: exactly <c>RequestSize</c> bytes, random or plausible content.</summary>
    public static Gen<RingSlot> Slot { get; } =
        from protocol in Protocol
        from bytes in Gen.Frequency(
            (1, Gen.Choose(0, 255).Select(b => (byte)b).ArrayOf(BlkifLayout.For(protocol).RequestSize)),
            (1, from op in AnyOperation
                from nr in Gen.Choose(0, 255)
                from fill in Gen.Choose(0, 255)
                select Plausible(BlkifLayout.For(protocol).RequestSize, op, nr, (byte)fill)))
        select new RingSlot(protocol, bytes);

    /// <summary>Ring start indices: mostly within a few ring-fulls below 2^32, sometimes 0 or anywhere.</summary>
    public static Gen<uint> RingStartIndex { get; } = Gen.Frequency(
        (6, Gen.Choose(0, 1024).Select(i => uint.MaxValue - (uint)i)),
        (1, Gen.Constant(0u)),
        (1, UInt32Uniform));

    /// <summary>Ring geometries: either ABI, order 0..3, start indices near the wrap.</summary>
    public static Gen<RingGeometry> Geometry { get; } =
        from protocol in Protocol
        from order in Gen.Frequency((3, Gen.Constant(0)), (3, Gen.Choose(1, BlkifConstants.MaxRingPageOrder)))
        from start in RingStartIndex
        select new RingGeometry(protocol, order, start);

    private static Gen<bool> ArbBool => Gen.Elements(false, true);

    private static Gen<int> MaxIndirect(int min) => Gen.Frequency(
        (3, Gen.Elements(32, 256, 4096).Select(v => Math.Max(v, min))),
        (1, Gen.Choose(min, 4096)));

    private static Gen<RequestCase> ValidSegmentCase() =>
        from ro in ArbBool
        from op in ro
            ? Gen.Frequency((3, Gen.Constant(BlkifOperation.Read)), (1, Gen.Constant(BlkifOperation.FlushDiskCache)))
            : Gen.Elements(SegmentOps)
        from n in op is BlkifOperation.Read or BlkifOperation.Write ? Gen.Choose(1, 11)
            : ro ? Gen.Constant(0) : Gen.Choose(0, 11)
        from segs in ValidSegment.ArrayOf(n)
        let total = SectorSum(segs)
        from extra in DiskSectors.Select(d => Math.Min(d, ulong.MaxValue - total))
        let disk = total + extra
        from sector in UpTo(disk - total)
        from id in UInt64Uniform
        from handle in Gen.Choose(0, ushort.MaxValue)
        select new RequestCase(MakeSegmentForm(op, n, segs, sector, id, (ushort)handle), disk, ro, 0, RequestFault.None,
            $"valid {op}");

    private static Gen<RequestCase> TooManySegments() =>
        from op in Gen.Elements(SegmentOps)
        from n in Gen.Choose(BlkifConstants.MaxSegmentsPerRequest + 1, 255)
        from req in SegmentForm(Gen.Constant(op), Gen.Constant(n), ValidSegment, UInt64Edgy)
        from disk in DiskSectors
        select new RequestCase(req, disk, false, 0, RequestFault.BadSegmentCount, $"nr_segments {n} > 11");

    private static Gen<RequestCase> ZeroSegments() =>
        from op in Gen.Elements(BlkifOperation.Read, BlkifOperation.Write)
        from req in SegmentForm(Gen.Constant(op), Gen.Constant(0), ValidSegment, UInt64Edgy)
        from disk in DiskSectors
        select new RequestCase(req, disk, false, 0, RequestFault.BadSegmentCount, $"{op} with 0 segments");

    private static Gen<RequestCase> BadSegmentCase() =>
        from ro in ArbBool
        from op in ro ? Gen.Constant(BlkifOperation.Read) : Gen.Elements(SegmentOps)
        from n in Gen.Choose(1, 11)
        from segs in ValidSegment.ArrayOf(n)
        from bad in InvalidSegment
        from at in Gen.Choose(0, n - 1)
        from sector in UInt64Edgy
        from disk in DiskSectors
        from id in UInt64Uniform
        select new RequestCase(MakeSegmentForm(op, n, Replace(segs, at, bad), sector, id, 0), disk, ro, 0,
            RequestFault.BadSegment, $"segment {at} is {bad.FirstSector}-{bad.LastSector}");

    private static Gen<RequestCase> SegmentOutOfRange() =>
        from ro in ArbBool
        from op in ro ? Gen.Constant(BlkifOperation.Read) : Gen.Elements(SegmentOps)
        from n in op is BlkifOperation.Read or BlkifOperation.Write ? Gen.Choose(1, 11) : Gen.Choose(0, 11)
        from segs in ValidSegment.ArrayOf(n)
        let total = SectorSum(segs)
        from disk in DiskSectors.Where(d => d != ulong.MaxValue || total > 0)
        // the last sector that still fits is disk - total; anything after it is out of range,
        // including sectors where sector + total overflows a ulong
        from sector in AtLeast(disk >= total ? disk - total + 1 : 0)
        from id in UInt64Uniform
        select new RequestCase(MakeSegmentForm(op, n, segs, sector, id, 0), disk, ro, 0, RequestFault.OutOfRange,
            $"{total} sectors at {sector} past the end");

    private static Gen<RequestCase> DiscardOutOfRange() => Gen.OneOf(
        from disk in DiskSectors.Where(d => d < ulong.MaxValue)
        from req in DiscardForm(AtLeast(disk + 1), UInt64Edgy)
        select new RequestCase(req, disk, false, 0, RequestFault.OutOfRange, "discard starting past the end"),
        from disk in DiskSectors.Where(d => d < ulong.MaxValue)
        from sector in UpTo(disk)
        from req in DiscardForm(Gen.Constant(sector), AtLeast(disk - sector + 1))
        select new RequestCase(req, disk, false, 0, RequestFault.OutOfRange, "discard running past the end (huge count)"));

    private static Gen<RequestCase> ReadOnlyCase() => Gen.OneOf(
        from op in Gen.Elements(BlkifOperation.Write, BlkifOperation.WriteBarrier, BlkifOperation.FlushDiskCache)
        from n in op == BlkifOperation.WriteBarrier ? Gen.Choose(0, 11) : Gen.Choose(1, 11)
        from segs in ValidSegment.ArrayOf(n)
        let total = SectorSum(segs)
        from extra in DiskSectors.Select(d => Math.Min(d, ulong.MaxValue - total))
        from sector in UpTo(extra)
        from id in UInt64Uniform
        select new RequestCase(MakeSegmentForm(op, n, segs, sector, id, 0), total + extra, true, 0, RequestFault.ReadOnly,
            $"{op} with {n} segments to a read-only disk"),
        from disk in DiskSectors
        from req in DiscardForm(UInt64Edgy, UInt64Edgy)
        select new RequestCase(req, disk, true, 0, RequestFault.ReadOnly, "discard on a read-only disk"),
        from max in MaxIndirect(1)
        from req in IndirectForm(Gen.Constant(BlkifOperation.Write), Gen.Choose(1, max))
        from disk in DiskSectors
        select new RequestCase(req, disk, true, max, RequestFault.ReadOnly, "indirect write to a read-only disk"));

    private static Gen<RequestCase> UnknownOperationCase() => Gen.OneOf(
        from op in UnknownOperation
        from req in SegmentForm(Gen.Constant(op), Gen.Choose(0, 255), AnySegment, UInt64Edgy)
        from disk in DiskSectors
        from ro in ArbBool
        select new RequestCase(req, disk, ro, 0, RequestFault.UnknownOperation, $"unknown operation {(byte)op}"),
        from req in IndirectForm(Gen.Elements(BlkifOperation.Read, BlkifOperation.Write), Gen.Choose(0, ushort.MaxValue))
        from disk in DiskSectors
        select new RequestCase(req, disk, false, 0, RequestFault.UnknownOperation, "indirect while feature-max-indirect-segments is 0"));

    private static Gen<RequestCase> BadIndirectOperationCase() =>
        from inner in Gen.Choose(0, 255).Where(b => b > 1).Select(b => (BlkifOperation)b)
        from max in MaxIndirect(1)
        from req in IndirectForm(Gen.Constant(inner), Gen.Choose(1, max))
        from disk in DiskSectors
        select new RequestCase(req, disk, false, max, RequestFault.BadIndirectOperation, $"indirect_op {(byte)inner}");

    private static Gen<RequestCase> BadIndirectCountCase() =>
        from max in MaxIndirect(1).Where(m => m < ushort.MaxValue)
        from n in Gen.Frequency((1, Gen.Constant(0)), (3, Gen.Choose(max + 1, ushort.MaxValue)))
        from req in IndirectForm(Gen.Elements(BlkifOperation.Read, BlkifOperation.Write), Gen.Constant(n))
        from disk in DiskSectors
        select new RequestCase(req, disk, false, max, RequestFault.BadSegmentCount, $"indirect nr_segments {n} (max {max})");

    private static BlkifRequest MakeSegmentForm(BlkifOperation op, int n, BlkifSegment[] segs, ulong sector, ulong id, ushort handle)
    {
        var r = new BlkifRequest { Operation = op, SegmentCount = n, Sector = sector, Id = id, Handle = handle };
        for (int i = 0; i < segs.Length && i < BlkifConstants.MaxSegmentsPerRequest; i++) r.Segments[i] = segs[i];
        return r;
    }

    private static BlkifRequest MakeIndirect(BlkifOperation inner, int n, uint[] refs, ulong sector, ulong id, ushort handle)
    {
        var r = new BlkifRequest
        {
            Operation = BlkifOperation.Indirect, IndirectOperation = inner, SegmentCount = n, Sector = sector, Id = id,
            Handle = handle,
        };
        for (int i = 0; i < BlkifConstants.MaxIndirectPagesPerRequest; i++) r.IndirectRefs[i] = refs[i];
        return r;
    }

    private static BlkifSegment[] Replace(BlkifSegment[] segs, int at, BlkifSegment with)
    {
        var copy = (BlkifSegment[])segs.Clone();
        copy[at] = with;
        return copy;
    }

    private static ulong SectorSum(BlkifSegment[] segs)
    {
        ulong total = 0;
        foreach (var s in segs) total += (ulong)s.SectorCount;
        return total;
    }

    private static byte[] Plausible(int size, BlkifOperation op, int nr, byte fill)
    {
        var bytes = new byte[size];
        Array.Fill(bytes, fill);
        bytes[BlkifLayout.Operation] = (byte)op;
        bytes[BlkifLayout.NrSegments] = (byte)nr;
        return bytes;
    }
}
