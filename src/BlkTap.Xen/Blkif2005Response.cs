using System.Buffers.Binary;

namespace BlkTap.Xen;

/// <summary>One 2005 <c>blkif_response_t</c>: id (unsigned long), operation (u8), status (s16). Immutable: thread-safe.</summary>
/// <param name="Id">Copied from the request.</param>
/// <param name="Operation">Copied from the request.</param>
/// <param name="Status"><see cref="Blkif2005.StatusOkay"/>, <see cref="Blkif2005.StatusError"/>, or for PROBE the number of vdisk_t returned.</param>
public readonly record struct Blkif2005Response(ulong Id, byte Operation, short Status)
{
    /// <summary>Decodes from <paramref name="source"/> (at least <see cref="Blkif2005Layout.ResponseSize"/> bytes).</summary>
    /// <exception cref="ArgumentException">The span is too short.</exception>
    public static Blkif2005Response Decode(ReadOnlySpan<byte> source, Blkif2005Layout layout)
    {
        if (source.Length < layout.ResponseSize) throw new ArgumentException($"a {layout} response is {layout.ResponseSize} bytes", nameof(source));
        return new(Blkif2005Request.ReadWord(source, layout), source[layout.ResponseOperationOffset],
            BinaryPrimitives.ReadInt16LittleEndian(source[layout.ResponseStatusOffset..]));
    }

    /// <summary>Encodes into <paramref name="destination"/>, padding zeroed.</summary>
    /// <exception cref="ArgumentException">The span is too short.</exception>
    public void Encode(Span<byte> destination, Blkif2005Layout layout)
    {
        if (destination.Length < layout.ResponseSize) throw new ArgumentException($"a {layout} response is {layout.ResponseSize} bytes", nameof(destination));
        var d = destination[..layout.ResponseSize];
        d.Clear();
        Blkif2005Request.WriteWord(d, layout, Id);
        d[layout.ResponseOperationOffset] = Operation;
        BinaryPrimitives.WriteInt16LittleEndian(d[layout.ResponseStatusOffset..], Status);
    }
}
