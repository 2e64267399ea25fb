namespace BlkTap.Emulator.PowerCut.Internal;

/// <summary>
/// What each sector of the disk may hold after a power cut: the last write to it made durable (acknowledged before a
/// completed flush, or a FUA write, or covered by a barrier), or any write to it issued after that (it may or may not
/// have landed). Writes to one sector never overlap in flight (the workload waits), so a sector's writes are ordered by
/// generation. Generation 0 is the image's first content. Threading: one thread (the driver's).
/// </summary>
internal sealed class SectorModel
{
    private readonly long[] _durable;
    private readonly List<long>?[] _maybe;
    private readonly List<bool> _discards = [false];

    public SectorModel(ulong sectors)
    {
        _durable = new long[sectors];
        _maybe = new List<long>?[sectors];
    }

    /// <summary>A new write (or, with <paramref name="discard"/>, a discard: zeroes) and its generation.</summary>
    public long NewGeneration(bool discard)
    {
        _discards.Add(discard);
        return _discards.Count - 1;
    }

    /// <summary>Generation <paramref name="generation"/> was sent: from now on it may land.</summary>
    public void Issued(ulong start, ulong count, long generation)
    {
        for (ulong s = start; s < start + count; s++) (_maybe[s] ??= []).Add(generation);
    }

    /// <summary>Generation <paramref name="generation"/> is durable: the sectors hold it or a later write.</summary>
    public void Durable(ulong start, ulong count, long generation)
    {
        for (ulong s = start; s < start + count; s++)
        {
            if (generation <= _durable[s]) continue;
            _durable[s] = generation;
            _maybe[s]?.RemoveAll(g => g <= generation);
        }
    }

    /// <summary>
    /// Checks what sector <paramref name="sector"/> holds (<see cref="SectorStamps.Identify"/>). Returns null when it is
    /// allowed; otherwise what is wrong, with <paramref name="lost"/> true when durable data is missing.
    /// </summary>
    public string? Check(ulong sector, long found, out bool lost)
    {
        lost = false;
        long durable = _durable[sector];
        if (Holds(durable, found)) return null;
        var maybe = _maybe[sector];
        if (maybe != null) foreach (long g in maybe) if (Holds(g, found)) return null;
        lost = durable != 0;
        return $"sector {sector} holds {SectorStamps.Describe(found)}; durable: {Expected(durable)}" +
            (maybe is { Count: > 0 } ? $", may also hold {string.Join(", ", maybe.Select(Expected))}" : "");
    }

    private bool Holds(long generation, long found) => _discards[(int)generation] ? found == SectorStamps.Zero : found == generation;

    private string Expected(long generation) => _discards[(int)generation] ? $"zeroes (discard #{generation})" : SectorStamps.Describe(generation);
}
