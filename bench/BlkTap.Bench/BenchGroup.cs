namespace BlkTap.Bench;

/// <summary>One group of benchmark lines that run together (see <see cref="BenchSuite.Groups"/>). An immutable value.</summary>
/// <param name="Name">What <c>--only</c> calls it.</param>
/// <param name="Title">How a failure of the group is named.</param>
/// <param name="Run">Measures the group's lines; throws (see <see cref="BenchSuite.Run"/>) when it cannot.</param>
/// <param name="NeedsRuntimeBaselines">The group's baselines are figures the <c>runtime</c> group measures into the <see cref="BenchContext"/>.</param>
public sealed record BenchGroup(string Name, string Title, Func<BenchContext, IEnumerable<BenchResult>> Run, bool NeedsRuntimeBaselines = false);
