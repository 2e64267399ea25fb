namespace BlkTap.Bench;

/// <summary>What several benchmark groups share: the median of repeated runs, and the random 4 KiB slot sequence.</summary>
/// <remarks>Threading: pure functions.</remarks>
internal static class BenchStats
{
    /// <summary>The median of <paramref name="values"/> (the upper one of an even count); the list is not changed.</summary>
    public static double Median(IReadOnlyList<double> values)
    {
        if (values.Count == 0) throw new InvalidOperationException("no runs to take the median of");
        var sorted = values.Order().ToArray();
        return sorted[sorted.Length / 2];
    }

    /// <summary>
    /// The next random 4 KiB-aligned sector below <paramref name="slots"/> × 8 (an LCG step on <paramref name="rng"/>):
    /// the harness, the raw baseline and the emulator workers draw the same sequence from the same seed.
    /// </summary>
    public static ulong NextSlotSector(ref ulong rng, ulong slots)
    {
        rng = rng * 6364136223846793005UL + 1442695040888963407UL;
        return (rng >> 20) % slots * 8;
    }
}
