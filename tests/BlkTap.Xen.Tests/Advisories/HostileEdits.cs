using System.Buffers.Binary;

namespace BlkTap.Xen.Tests.Advisories;

/// <summary>What a hostile guest writes into its own memory (the Xen twin of the emulator tests' GuestMemory).</summary>
internal static class HostileEdits
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
}
