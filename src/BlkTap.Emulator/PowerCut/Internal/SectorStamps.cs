using System.Buffers.Binary;

namespace BlkTap.Emulator.PowerCut.Internal;

/// <summary>
/// Sector contents that say which write put them there: 64 little-endian words, the write's generation, the sector
/// number, then a hash of both per word, so a sector from another write, another place, or torn inside is recognised.
/// Generation 0 is the image's content before the run. Stateless; thread-safe.
/// </summary>
internal static class SectorStamps
{
    /// <summary>An all-zero sector (a hole, a discard, a map bit without its data).</summary>
    public const long Zero = -1;
    /// <summary>Anything else: no stamp of any write.</summary>
    public const long Garbage = -2;

    public static void Fill(Span<byte> sector, long generation, ulong number)
    {
        BinaryPrimitives.WriteInt64LittleEndian(sector, generation);
        BinaryPrimitives.WriteUInt64LittleEndian(sector[8..], number);
        for (int w = 2; w < 64; w++) BinaryPrimitives.WriteUInt64LittleEndian(sector[(w * 8)..], Mix(generation, number, w));
    }

    /// <summary>The generation that wrote <paramref name="sector"/> at <paramref name="number"/>, <see cref="Zero"/>, or <see cref="Garbage"/>.</summary>
    public static long Identify(ReadOnlySpan<byte> sector, ulong number)
    {
        if (sector.IndexOfAnyExcept((byte)0) < 0) return Zero;
        long generation = BinaryPrimitives.ReadInt64LittleEndian(sector);
        if (generation < 0 || BinaryPrimitives.ReadUInt64LittleEndian(sector[8..]) != number) return Garbage;
        for (int w = 2; w < 64; w++)
            if (BinaryPrimitives.ReadUInt64LittleEndian(sector[(w * 8)..]) != Mix(generation, number, w)) return Garbage;
        return generation;
    }

    public static string Describe(long found) => found switch
    {
        Zero => "zeroes",
        Garbage => "garbage",
        0 => "the image's first content",
        _ => $"write #{found}",
    };

    private static ulong Mix(long generation, ulong number, int word)
    {
        // splitmix64's finaliser over the three inputs.
        ulong z = (ulong)generation * 0x9E3779B97F4A7C15UL ^ number * 0xBF58476D1CE4E5B9UL ^ (ulong)word * 0x94D049BB133111EBUL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
