using System.Runtime.InteropServices;
using FsCheck;
using NUnit.Framework;

namespace BlkTap.Abstractions.Tests.Devices;

/// <summary><see cref="StreamingCopy"/>: the streaming paths and the plain fallback copy exactly the bytes asked for.</summary>
public unsafe class StreamingCopyTests
{
    [FsCheck.NUnit.Property(MaxTest = 300)]
    public void Copy_RandomLengthAndAlignment_CopiesExactlyTheSourceAndNothingAround(PositiveInt seed)
    {
        var rng = new Random(seed.Get);
        // Lengths that fit the streaming paths (multiples of 128 and 256) and some that do not; destinations aligned to
        // 64, to 32 only, and not at all.
        int length = rng.Next(4) switch
        {
            0 => 256 * rng.Next(0, 33),
            1 => 128 * rng.Next(0, 65),
            2 => 512 * rng.Next(1, 17),
            _ => rng.Next(0, 9000),
        };
        int shift = rng.Next(3) switch { 0 => 0, 1 => 32, _ => rng.Next(1, 64) };
        const int guard = 128;
        var block = (byte*)NativeMemory.AlignedAlloc((nuint)(length + 2 * guard + 64), 64);
        try
        {
            var whole = new Span<byte>(block, length + 2 * guard + 64);
            whole.Fill(0xEE);
            var source = new byte[length + 3];
            rng.NextBytes(source);
            var src = source.AsSpan(rng.Next(4) == 0 ? 3 : 0, length); // an unaligned source now and then
            byte* destination = block + guard + shift;
            StreamingCopy.Copy(src, destination);
            Assert.That(new Span<byte>(destination, length).SequenceEqual(src), Is.True, $"{length} bytes to +{shift}");
            Assert.That(whole[..(guard + shift)].IndexOfAnyExcept((byte)0xEE), Is.EqualTo(-1), "nothing written before");
            Assert.That(whole[(guard + shift + length)..].IndexOfAnyExcept((byte)0xEE), Is.EqualTo(-1), "nothing written after");
        }
        finally { NativeMemory.AlignedFree(block); }
    }
}
