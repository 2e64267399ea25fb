using System.Buffers.Binary;
using System.Runtime.CompilerServices;

namespace BlkTap.Xen;

/// <summary>The eleven <c>frame_and_sects</c> words of a 2005 request.</summary>
[InlineArray(Blkif2005.MaxSegmentsPerRequest)]
public struct Blkif2005FrameArray
{
    private ulong _element0;
}

/// <summary>One 2005 <c>blkif_request_t</c>, decoded. A plain value: not thread-safe to share while mutated.</summary>
public struct Blkif2005Request
{
    /// <summary>BLKIF_OP_* (<see cref="Blkif2005.OpRead"/>, <see cref="Blkif2005.OpWrite"/>, <see cref="Blkif2005.OpProbe"/>).</summary>
    public byte Operation;
    /// <summary>nr_segments.</summary>
    public byte SegmentCount;
    /// <summary>device (blkif_vdev_t): the virtual device the request is for.</summary>
    public ushort Device;
    /// <summary>id (unsigned long): on the device's rings, the driver's <c>(domid &lt;&lt; 16) | idx</c>.</summary>
    public ulong Id;
    /// <summary>sector_number.</summary>
    public ulong Sector;
    /// <summary>frame_and_sects[]; see <see cref="Blkif2005.MakeFrameAndSects"/>.</summary>
    public Blkif2005FrameArray FrameAndSects;

    /// <summary>Decodes from <paramref name="source"/> (at least <see cref="Blkif2005Layout.RequestSize"/> bytes). Never throws on content.</summary>
    /// <exception cref="ArgumentException">The span is too short.</exception>
    public static Blkif2005Request Decode(ReadOnlySpan<byte> source, Blkif2005Layout layout)
    {
        if (source.Length < layout.RequestSize) throw new ArgumentException($"a {layout} request is {layout.RequestSize} bytes", nameof(source));
        var r = new Blkif2005Request
        {
            Operation = source[0],
            SegmentCount = source[1],
            Device = BinaryPrimitives.ReadUInt16LittleEndian(source[2..]),
            Id = ReadWord(source[layout.IdOffset..], layout),
            Sector = BinaryPrimitives.ReadUInt64LittleEndian(source[layout.SectorOffset..]),
        };
        for (int s = 0; s < Blkif2005.MaxSegmentsPerRequest; s++)
            r.FrameAndSects[s] = ReadWord(source[(layout.FrameAndSectsOffset + s * layout.WordSize)..], layout);
        return r;
    }

    /// <summary>Encodes into <paramref name="destination"/>, padding zeroed. A 32-bit layout keeps the low 32 bits of each word.</summary>
    /// <exception cref="ArgumentException">The span is too short.</exception>
    public readonly void Encode(Span<byte> destination, Blkif2005Layout layout)
    {
        if (destination.Length < layout.RequestSize) throw new ArgumentException($"a {layout} request is {layout.RequestSize} bytes", nameof(destination));
        var d = destination[..layout.RequestSize];
        d.Clear();
        d[0] = Operation;
        d[1] = SegmentCount;
        BinaryPrimitives.WriteUInt16LittleEndian(d[2..], Device);
        WriteWord(d[layout.IdOffset..], layout, Id);
        BinaryPrimitives.WriteUInt64LittleEndian(d[layout.SectorOffset..], Sector);
        for (int s = 0; s < Blkif2005.MaxSegmentsPerRequest; s++)
            WriteWord(d[(layout.FrameAndSectsOffset + s * layout.WordSize)..], layout, FrameAndSects[s]);
    }

    internal static ulong ReadWord(ReadOnlySpan<byte> source, Blkif2005Layout layout) =>
        layout.WordSize == 8 ? BinaryPrimitives.ReadUInt64LittleEndian(source) : BinaryPrimitives.ReadUInt32LittleEndian(source);

    internal static void WriteWord(Span<byte> destination, Blkif2005Layout layout, ulong value)
    {
        if (layout.WordSize == 8) BinaryPrimitives.WriteUInt64LittleEndian(destination, value);
        else BinaryPrimitives.WriteUInt32LittleEndian(destination, (uint)value);
    }
}
