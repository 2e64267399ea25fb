using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace BlkTap.Trace;

/// <summary>What <see cref="ReplayData.Check"/> recognised in a 512-byte sector.</summary>
public enum ReplaySectorKind
{
    /// <summary>All zero bytes (never written, or discarded to zeros).</summary>
    Zero,
    /// <summary>Exactly the content <see cref="ReplayData.Fill"/> produces for <see cref="ReplaySector.Sector"/> and <see cref="ReplaySector.WriteSequence"/>.</summary>
    Written,
    /// <summary>Anything else: corrupt, torn, or not written by a replay.</summary>
    Unrecognized,
}

/// <summary>The identity of a sector's content as recovered by <see cref="ReplayData.Check"/>.</summary>
/// <param name="Kind">What the content is.</param>
/// <param name="Sector">For <see cref="ReplaySectorKind.Written"/>: the sector the data was written for.</param>
/// <param name="WriteSequence">For <see cref="ReplaySectorKind.Written"/>: the write sequence number.</param>
public readonly record struct ReplaySector(ReplaySectorKind Kind, ulong Sector, ulong WriteSequence)
{
    /// <inheritdoc />
    public override string ToString() => Kind switch
    {
        ReplaySectorKind.Zero => "zeros",
        ReplaySectorKind.Written => $"write #{WriteSequence} of sector {Sector}",
        _ => "unrecognized data",
    };
}

/// <summary>
/// Deterministic data for verified replays: every 512-byte sector of a write gets content that
/// encodes its own sector number and the write's sequence number, and is otherwise a pseudo-random
/// stream derived from both, so a read tells exactly which write (and which sector of it) its bytes
/// came from. Stateless and thread-safe; allocation-free.
/// </summary>
/// <remarks>
/// Layout of one sector (little-endian): bytes 0-7 the ASCII magic <c>BTREPLAY</c>, 8-15 the sector
/// number, 16-23 the write sequence, 24-511 a SplitMix64 stream seeded from sector and sequence.
/// <see cref="Check"/> regenerates the whole sector and compares every byte, so any corruption shows.
/// </remarks>
public static class ReplayData
{
    /// <summary>Size of the unit of content (512 bytes, the blkif sector).</summary>
    public const int SectorSize = 512;
    private const ulong Magic = 0x59414C5045525442; // "BTREPLAY" little-endian

    /// <summary>
    /// Fills <paramref name="buffer"/> (a multiple of 512 bytes) with the content of write number
    /// <paramref name="writeSequence"/> starting at <paramref name="sector"/>: the i-th sector of the
    /// buffer encodes sector <c>sector + i</c>.
    /// </summary>
    /// <exception cref="ArgumentException">The buffer length is not a multiple of 512.</exception>
    public static void Fill(Span<byte> buffer, ulong sector, ulong writeSequence)
    {
        if (buffer.Length % SectorSize != 0)
            throw new ArgumentException($"buffer length {buffer.Length} is not a multiple of {SectorSize}", nameof(buffer));
        for (var i = 0; i < buffer.Length; i += SectorSize)
            FillSector(buffer.Slice(i, SectorSize), sector + (ulong)(i / SectorSize), writeSequence);
    }

    private static void FillSector(Span<byte> s, ulong sector, ulong seq)
    {
        // The sector as 64 little-endian words (one bounds check, not one a word: this runs for every byte a replay writes).
        var words = MemoryMarshal.Cast<byte, ulong>(s[..SectorSize]);
        words[0] = LittleEndian(Magic);
        words[1] = LittleEndian(sector);
        words[2] = LittleEndian(seq);
        var state = Seed(sector, seq);
        if (BitConverter.IsLittleEndian && Vector512.IsHardwareAccelerated)
        {
            // As below, eight words at a time (AVX-512 multiplies 64-bit lanes natively): words 3 and 4..59 (outputs
            // 1 and 2..57) as one word and seven vectors of eight, words 60..63 as one vector of four.
            words[3] = Mix(state + Gamma);
            var k8 = Vector512.Create(2UL, 3UL, 4UL, 5UL, 6UL, 7UL, 8UL, 9UL);
            var step8 = Vector512.Create(8UL);
            var gamma8 = Vector512.Create(Gamma);
            var seed8 = Vector512.Create(state);
            for (var w = 4; w < 60; w += 8, k8 += step8)
                Mix(seed8 + k8 * gamma8).StoreUnsafe(ref words[w]);
            Mix(Vector256.Create(state) + Vector256.Create(58UL, 59UL, 60UL, 61UL) * Vector256.Create(Gamma)).StoreUnsafe(ref words[60]);
            return;
        }
        if (BitConverter.IsLittleEndian && Vector256.IsHardwareAccelerated)
        {
            // SplitMix64's k-th output is Mix(seed + k × gamma): no output depends on another, so four words at a time.
            // Words 3 and 4..63 (outputs 1 and 2..61): word 3 alone, then 15 vectors of four.
            words[3] = Mix(state + Gamma);
            var k = Vector256.Create(2UL, 3UL, 4UL, 5UL);
            var step = Vector256.Create(4UL);
            var gamma = Vector256.Create(Gamma);
            var seed = Vector256.Create(state);
            for (var w = 4; w < SectorSize / 8; w += 4, k += step)
                Mix(seed + k * gamma).StoreUnsafe(ref words[w]);
            return;
        }
        for (var w = 3; w < words.Length; w++)
            words[w] = LittleEndian(Next(ref state));
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private static Vector512<ulong> Mix(Vector512<ulong> z)
    {
        z = (z ^ Vector512.ShiftRightLogical(z, 30)) * Vector512.Create(0xBF58476D1CE4E5B9UL);
        z = (z ^ Vector512.ShiftRightLogical(z, 27)) * Vector512.Create(0x94D049BB133111EBUL);
        return z ^ Vector512.ShiftRightLogical(z, 31);
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private static Vector256<ulong> Mix(Vector256<ulong> z)
    {
        z = (z ^ Vector256.ShiftRightLogical(z, 30)) * Vector256.Create(0xBF58476D1CE4E5B9UL);
        z = (z ^ Vector256.ShiftRightLogical(z, 27)) * Vector256.Create(0x94D049BB133111EBUL);
        return z ^ Vector256.ShiftRightLogical(z, 31);
    }

    private static ulong LittleEndian(ulong value) => BitConverter.IsLittleEndian ? value : BinaryPrimitives.ReverseEndianness(value);

    /// <summary>Identifies the content of one 512-byte sector.</summary>
    /// <exception cref="ArgumentException">The span is not exactly 512 bytes.</exception>
    public static ReplaySector Check(ReadOnlySpan<byte> sectorBytes)
    {
        if (sectorBytes.Length != SectorSize)
            throw new ArgumentException($"a sector is {SectorSize} bytes, got {sectorBytes.Length}", nameof(sectorBytes));
        if (BinaryPrimitives.ReadUInt64LittleEndian(sectorBytes) == Magic)
        {
            var sector = BinaryPrimitives.ReadUInt64LittleEndian(sectorBytes[8..]);
            var seq = BinaryPrimitives.ReadUInt64LittleEndian(sectorBytes[16..]);
            var state = Seed(sector, seq);
            var ok = true;
            for (var o = 24; o < SectorSize && ok; o += 8)
                ok = BinaryPrimitives.ReadUInt64LittleEndian(sectorBytes[o..]) == Next(ref state);
            if (ok) return new ReplaySector(ReplaySectorKind.Written, sector, seq);
            return new ReplaySector(ReplaySectorKind.Unrecognized, 0, 0);
        }
        return sectorBytes.IndexOfAnyExcept((byte)0) < 0
            ? new ReplaySector(ReplaySectorKind.Zero, 0, 0)
            : new ReplaySector(ReplaySectorKind.Unrecognized, 0, 0);
    }

    private static ulong Seed(ulong sector, ulong seq) => sector * 0x9E3779B97F4A7C15UL ^ (seq + 0x632BE59BD9B4E019UL) * 0xD6E8FEB86659FD93UL;

    // SplitMix64 (Steele, Lea, Flood 2014): public-domain constants.
    private static ulong Next(ref ulong state) => Mix(state += Gamma);

    private const ulong Gamma = 0x9E3779B97F4A7C15UL;

    private static ulong Mix(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
