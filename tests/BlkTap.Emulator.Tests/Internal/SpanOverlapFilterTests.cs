using BlkTap.Emulator.Internal;
using FsCheck;
using NUnit.Framework;

namespace BlkTap.Emulator.Tests.Internal;

public class SpanOverlapFilterTests
{
    // Spans near the 128-sector granule boundaries, 256 MiB apart (the same buckets), wide ones and ones at the end of
    // the sector space: after every change, a span that overlaps one in the set must get "may overlap".
    private static (ulong Start, ulong End) RandomSpan(Random rng)
    {
        ulong start = rng.Next(6) switch
        {
            0 => (ulong)rng.Next(1 << 22),
            1 or 2 => (ulong)(128 * rng.Next(1, 16) + rng.Next(-20, 20)),
            3 => (1UL << 19) + (ulong)(128 * rng.Next(1, 16) + rng.Next(-20, 20)),
            4 => (ulong)rng.Next(4096),
            _ => ulong.MaxValue - (ulong)rng.Next(1, 64),
        };
        ulong length = rng.Next(10) == 0 ? (ulong)rng.Next(1, 40_000) : (ulong)rng.Next(1, 40);
        return (start, start + length); // may wrap at the top: the filter counts that span as wide
    }

    // The replay's admission scan's own test (a span whose end wrapped overlaps nothing there).
    private static bool Overlaps((ulong Start, ulong End) a, (ulong Start, ulong End) b) => a.Start < b.End && b.Start < a.End;

    [FsCheck.NUnit.Property(MaxTest = 200)]
    public void MayOverlap_AfterAddsAndRemoves_NeverFalseForAnOverlap(PositiveInt seed)
    {
        var rng = new Random(seed.Get);
        var filter = new SpanOverlapFilter();
        var set = new List<(ulong Start, ulong End)>();
        for (int step = 0; step < 300; step++)
        {
            if (set.Count > 0 && (set.Count >= 32 || rng.Next(2) == 0))
            {
                int i = rng.Next(set.Count);
                filter.Remove(set[i].Start, set[i].End);
                set.RemoveAt(i);
            }
            else
            {
                var s = RandomSpan(rng);
                filter.Add(s.Start, s.End);
                set.Add(s);
            }
            Assert.That(filter.Count, Is.EqualTo(set.Count));
            for (int q = 0; q < 8; q++)
            {
                var query = RandomSpan(rng);
                if (set.Any(s => Overlaps(s, query)))
                    Assert.That(filter.MayOverlap(query.Start, query.End), Is.True, $"step {step}: [{query.Start}, {query.End}) overlaps a span in the set");
            }
        }
    }

    [Test]
    public void MayOverlap_SpanAcrossAGranuleBoundary_SeesOneInTheSecondGranule()
    {
        var filter = new SpanOverlapFilter();
        filter.Add(130, 140); // granule 1 only
        Assert.That(filter.MayOverlap(120, 136), Is.True);
        Assert.That(filter.MayOverlap(0, 100), Is.False);
        filter.Remove(130, 140);
        Assert.That(filter.MayOverlap(120, 136), Is.False);
    }

    [Test]
    public void MayOverlap_DisjointSpansInOtherGranules_False()
    {
        var filter = new SpanOverlapFilter();
        for (ulong g = 0; g < 32; g++) filter.Add(g * 1024, g * 1024 + 8);
        Assert.That(filter.MayOverlap(512, 520), Is.False);
        Assert.That(filter.MayOverlap(1024 * 5 + 200, 1024 * 5 + 300), Is.False);
        Assert.That(filter.MayOverlap(1024 * 5 + 4, 1024 * 5 + 300), Is.True);
    }

    [Test]
    public void MayOverlap_WideSpanInTheSet_TrueEverywhereUntilRemoved()
    {
        var filter = new SpanOverlapFilter();
        ulong wide = (SpanOverlapFilter.MaxGranules + 1) * 128;
        filter.Add(1UL << 30, (1UL << 30) + wide);
        Assert.That(filter.MayOverlap(0, 8), Is.True);
        filter.Remove(1UL << 30, (1UL << 30) + wide);
        Assert.That(filter.MayOverlap(0, 8), Is.False);
        Assert.That(filter.Count, Is.EqualTo(0));
    }
}
