namespace BlkTap.Bench;

/// <summary>One benchmark line: our figure, the baseline's figure measured in the same run, and their ratio.</summary>
/// <param name="Name">What was measured.</param>
/// <param name="Ours">Our figure.</param>
/// <param name="Theirs">The baseline's figure (null when there is no baseline for this line).</param>
/// <param name="Unit">Unit of both figures.</param>
/// <param name="Baseline">What the baseline is.</param>
/// <param name="HigherIsBetter">Whether a larger figure is better (ratio ours/theirs) or worse (theirs/ours).</param>
/// <param name="Note">Anything a reader must know (where the files lived, what was skipped).</param>
/// <remarks>Threading: an immutable value.</remarks>
public sealed record BenchResult(string Name, double Ours, double? Theirs, string Unit, string Baseline, bool HigherIsBetter = true, string? Note = null)
{
    /// <summary>ours/theirs when higher is better, theirs/ours otherwise: above 1 means we win.</summary>
    public double? Ratio => Theirs is not { } t || t == 0 || Ours == 0 ? null : HigherIsBetter ? Ours / t : t / Ours;
}
