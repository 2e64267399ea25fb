namespace BlkTap.Trace;

/// <summary>A read that did not return what the replay model expects.</summary>
/// <param name="Sector">The sector whose content is wrong.</param>
/// <param name="ExpectedSequence">The last write to that sector (0: never written).</param>
/// <param name="DiscardedSince">True when the sector was discarded after that write (zeros were also acceptable).</param>
/// <param name="Found">What the read returned.</param>
public readonly record struct ReplayMismatch(ulong Sector, ulong ExpectedSequence, bool DiscardedSince, ReplaySector Found)
{
    /// <summary>A one-line description for reports.</summary>
    public override string ToString()
    {
        var expected = ExpectedSequence == 0 ? "zeros" : $"write #{ExpectedSequence} of sector {Sector}";
        if (DiscardedSince) expected += " or zeros (discarded since)";
        return $"sector {Sector}: expected {expected}, found {Found}";
    }
}

/// <summary>
/// The model a verified replay checks reads against: for every sector, the sequence number of the
/// last write (from <see cref="ReplayData.Fill"/>) and whether it was discarded since. Sparse:
/// memory grows with the sectors written, in chunks of 1024 sectors (8 KiB).
/// </summary>
/// <remarks>
/// <para>Threading: not thread-safe; drive it from the replay loop.</para>
/// <para>Call <see cref="RecordWrite"/> when a write completes successfully, and only verify reads
/// that do not overlap a write still in flight (the content of such a read is legitimately either).</para>
/// </remarks>
public sealed class ReplayVerifier
{
    private const int ChunkShift = 10;
    private const int ChunkSize = 1 << ChunkShift;
    private const ulong DiscardedBit = 1UL << 63;
    /// <summary>The largest write sequence number the verifier accepts.</summary>
    public const ulong MaxSequence = DiscardedBit - 1;

    private readonly Dictionary<ulong, ulong[]> _chunks = new();
    private readonly bool _initiallyZero;

    /// <summary>Creates a verifier.</summary>
    /// <param name="initiallyZero">True when never-written sectors must read as zeros (a fresh image); false accepts anything there.</param>
    public ReplayVerifier(bool initiallyZero = true) => _initiallyZero = initiallyZero;

    /// <summary>Sectors that have been written or discarded.</summary>
    public long TrackedSectors { get; private set; }

    /// <summary>Records that write <paramref name="writeSequence"/> (1 ≤ seq ≤ <see cref="MaxSequence"/>) covered <paramref name="sectorCount"/> sectors from <paramref name="sector"/>.</summary>
    public void RecordWrite(ulong sector, ulong sectorCount, ulong writeSequence)
    {
        if (writeSequence is 0 or > MaxSequence)
            throw new ArgumentOutOfRangeException(nameof(writeSequence), writeSequence, $"write sequence numbers run from 1 to {MaxSequence}");
        for (ulong i = 0; i < sectorCount; i++) Set(sector + i, writeSequence);
    }

    /// <summary>Records a discard: the sectors may now read as zeros or as their last write.</summary>
    public void RecordDiscard(ulong sector, ulong sectorCount)
    {
        for (ulong i = 0; i < sectorCount; i++) Set(sector + i, Get(sector + i) | DiscardedBit);
    }

    /// <summary>The last write sequence recorded for <paramref name="sector"/> (0: never written).</summary>
    public ulong LastWrite(ulong sector) => Get(sector) & ~DiscardedBit;

    /// <summary>
    /// Checks the data a read of <paramref name="data"/>.Length bytes at <paramref name="sector"/>
    /// returned; returns the first mismatching sector, or null when every sector is as expected.
    /// </summary>
    /// <exception cref="ArgumentException">The length is not a multiple of 512.</exception>
    public ReplayMismatch? Verify(ulong sector, ReadOnlySpan<byte> data)
    {
        if (data.Length % ReplayData.SectorSize != 0)
            throw new ArgumentException($"read length {data.Length} is not a multiple of {ReplayData.SectorSize}", nameof(data));
        for (var i = 0; i * ReplayData.SectorSize < data.Length; i++)
        {
            var s = sector + (ulong)i;
            var found = ReplayData.Check(data.Slice(i * ReplayData.SectorSize, ReplayData.SectorSize));
            var state = Get(s);
            var seq = state & ~DiscardedBit;
            var discarded = (state & DiscardedBit) != 0;
            bool ok;
            if (seq == 0)
                ok = !_initiallyZero || found.Kind == ReplaySectorKind.Zero;
            else
                ok = (found.Kind == ReplaySectorKind.Written && found.Sector == s && found.WriteSequence == seq)
                     || (discarded && found.Kind == ReplaySectorKind.Zero);
            if (!ok) return new ReplayMismatch(s, seq, discarded, found);
        }
        return null;
    }

    private ulong Get(ulong sector) =>
        _chunks.TryGetValue(sector >> ChunkShift, out var chunk) ? chunk[(int)(sector & (ChunkSize - 1))] : 0;

    private void Set(ulong sector, ulong value)
    {
        if (!_chunks.TryGetValue(sector >> ChunkShift, out var chunk))
            _chunks[sector >> ChunkShift] = chunk = new ulong[ChunkSize];
        ref var slot = ref chunk[(int)(sector & (ChunkSize - 1))];
        if (slot == 0 && value != 0) TrackedSectors++;
        slot = value;
    }
}
