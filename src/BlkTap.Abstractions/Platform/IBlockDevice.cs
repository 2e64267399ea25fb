namespace BlkTap;

/// <summary>
/// A synchronous block store addressed in 512-byte sectors: memory, a file, a block device. What a
/// terminating tap or the emulator's blkback serves.
/// </summary>
/// <remarks>
/// Threading: implementations document their own rules; the built-in ones allow concurrent calls on
/// disjoint ranges. Failures are returned as a status, never thrown.
/// </remarks>
public interface IBlockDevice : IDisposable
{
    /// <summary>Capacity in 512-byte sectors.</summary>
    ulong SectorCount { get; }

    /// <summary>Whether writes are refused.</summary>
    bool ReadOnly { get; }

    /// <summary>Whether <see cref="Discard"/> does anything (feature-discard).</summary>
    bool SupportsDiscard { get; }

    /// <summary>Reads <c>buffer.Length</c> bytes (a multiple of 512) starting at <paramref name="sector"/>.</summary>
    BlkifStatus Read(ulong sector, Span<byte> buffer);

    /// <summary>Writes <c>data.Length</c> bytes (a multiple of 512) starting at <paramref name="sector"/>.</summary>
    BlkifStatus Write(ulong sector, ReadOnlySpan<byte> data);

    /// <summary>Makes every completed write durable.</summary>
    BlkifStatus Flush();

    /// <summary>Discards <paramref name="count"/> sectors: later reads return zeroes, or the old data where the store cannot punch holes.</summary>
    BlkifStatus Discard(ulong sector, ulong count);
}
