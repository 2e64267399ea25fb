using BlkTap.Bench;
using FsCheck;
using NUnit.Framework;

namespace BlkTap.Bench.Tests;

/// <summary>The ratio's orientation: above 1 always means we win, whichever way the unit points.</summary>
public class BenchResultTests
{
    [FsCheck.NUnit.Property]
    public bool Ratio_AnyPositiveFigures_AboveOneExactlyWhenWeWin(PositiveInt ours, PositiveInt theirs, bool higherIsBetter)
    {
        var r = new BenchResult("x", ours.Get, theirs.Get, "u", "b", higherIsBetter);
        bool weWin = higherIsBetter ? ours.Get > theirs.Get : ours.Get < theirs.Get;
        bool tie = ours.Get == theirs.Get;
        return r.Ratio is { } ratio && (tie ? ratio == 1.0 : (ratio > 1.0) == weWin);
    }

    [FsCheck.NUnit.Property]
    public bool Ratio_MissingOrZeroFigure_IsNull(PositiveInt ours, bool higherIsBetter) =>
        new BenchResult("x", ours.Get, null, "u", "b", higherIsBetter).Ratio == null
        && new BenchResult("x", 0, ours.Get, "u", "b", higherIsBetter).Ratio == null
        && new BenchResult("x", ours.Get, 0, "u", "b", higherIsBetter).Ratio == null;
}
