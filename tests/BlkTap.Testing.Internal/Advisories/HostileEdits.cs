using System.Buffers.Binary;
using NUnit.Framework;

namespace BlkTap.Testing.Advisories;

/// <summary>What a hostile guest writes into its own memory, on the emulator and on real Xen alike: descriptor pages,
/// data page patterns, garbled ring slots.</summary>
public static class HostileEdits
{
    /// <summary>Writes segment descriptor <paramref name="index"/> into an indirect page.</summary>
    public static void WriteDescriptor(Span<byte> page, int index, BlkifSegment segment) =>
        BlkifCodec.EncodeSegment(segment, page.Slice(index * BlkifSegment.Size, BlkifSegment.Size));

    /// <summary>Fills a page with a pattern that names it and each sector in it.</summary>
    public static void FillPattern(Span<byte> page, byte tag)
    {
        for (int i = 0; i < page.Length; i++) page[i] = (byte)(tag ^ (i / BlkifConstants.SectorSize * 17) ^ (i & 0x3F));
    }

    /// <summary>What a guest's rewrite of a consumed request slot puts there: an impossible, out-of-range request.</summary>
    public static void Garble(Span<byte> slot, BlkifLayout layout, uint foreignRef)
    {
        slot[BlkifLayout.NrSegments] = 255;
        BinaryPrimitives.WriteUInt64LittleEndian(slot[layout.RequestSector..], ulong.MaxValue - 1);
        for (int s = 0; s < BlkifConstants.MaxSegmentsPerRequest; s++)
        {
            var seg = slot.Slice(layout.RequestSegments + s * BlkifSegment.Size, BlkifSegment.Size);
            BinaryPrimitives.WriteUInt32LittleEndian(seg, foreignRef);
            seg[4] = 7;   // first_sect
            seg[5] = 200; // last_sect
        }
    }

    /// <summary>
    /// XSA-216: the response in <paramref name="slot"/> carries <paramref name="id"/>, <paramref name="op"/> and
    /// <paramref name="status"/>, and every other byte of it is zero (no stale guest or backend bytes in the pads).
    /// </summary>
    public static void AssertResponseOnlyFields(ReadOnlySpan<byte> slot, BlkifLayout layout, ulong id, BlkifOperation op, BlkifStatus status, string what)
    {
        var bytes = slot[..layout.ResponseSize].ToArray();
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

    /// <summary>A read that claims 12 segments (one more than a direct request may carry).</summary>
    public static BlkifRequest TwelveSegmentRead(uint gref)
    {
        var r = new BlkifRequest { Operation = BlkifOperation.Read, Sector = 0, SegmentCount = 1 };
        r.Segments[0] = new BlkifSegment(gref, 0, 7);
        r.SegmentCount = 12;
        return r;
    }

    /// <summary>An indirect request of <paramref name="inner"/> with one segment described on one descriptor page.</summary>
    public static BlkifRequest IndirectOf(BlkifOperation inner, uint descriptorRef)
    {
        var r = new BlkifRequest { Operation = BlkifOperation.Indirect, IndirectOperation = inner, SegmentCount = 1, Sector = 24 };
        r.IndirectRefs[0] = descriptorRef;
        return r;
    }
}
