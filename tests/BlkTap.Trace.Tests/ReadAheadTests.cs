using BlkTap.Trace;
using FsCheck;
using NUnit.Framework;

namespace BlkTap.Trace.Tests;

public class ReadAheadTests
{
    [FsCheck.NUnit.Property(MaxTest = 40)]
    public void Of_AnySequence_SameItemsInOrder(NonNegativeInt length, PositiveInt blockSize, PositiveInt blocks)
    {
        int n = length.Get % 20_000, block = 1 + blockSize.Get % 700, depth = 1 + blocks.Get % 5;
        var items = ReadAhead.Of(Enumerable.Range(0, n), block, depth).ToList();
        Assert.That(items, Is.EqualTo(Enumerable.Range(0, n)));
    }

    [FsCheck.NUnit.Property(MaxTest = 25)]
    public void Of_SourceThrows_ItemsBeforeThenTheSameException(NonNegativeInt at, PositiveInt blockSize)
    {
        int failAt = at.Get % 5_000, block = 1 + blockSize.Get % 300;
        var seen = new List<int>();
        var ex = Assert.Throws<TraceFormatException>(() =>
        {
            foreach (var i in ReadAhead.Of(Throwing(failAt), block, 2)) seen.Add(i);
        });
        Assert.That(ex!.Message, Does.Contain($"record {failAt}"));
        Assert.That(seen, Is.EqualTo(Enumerable.Range(0, failAt)), "every item before the failure, in order");
    }

    [Test]
    public void Dispose_ConsumerStopsEarly_SourceIsDisposedBeforeDisposeReturns()
    {
        var disposed = new ManualResetEventSlim();
        var produced = 0;
        using (var e = ReadAhead.Of(Endless(disposed, () => Interlocked.Increment(ref produced)), 64, 2).GetEnumerator())
        {
            for (int i = 0; i < 1000; i++)
            {
                Assert.That(e.MoveNext(), Is.True);
                Assert.That(e.Current, Is.EqualTo(i));
            }
        }
        Assert.That(disposed.IsSet, Is.True, "the source's finally ran on the read-ahead thread before Dispose returned");
        int after = Volatile.Read(ref produced);
        Assert.That(after, Is.LessThanOrEqualTo(1000 + 64 * 4), "the thread stopped a few blocks ahead, not at the end of an endless source");
    }

    [Test]
    public void MoveNext_SourceSlowerThanConsumer_WaitsForEachBlock()
    {
        // A source that yields in bursts with pauses: the consumer blocks on the thread, never sees a gap or a reorder.
        static IEnumerable<int> Bursty()
        {
            for (int i = 0; i < 3000; i++)
            {
                if (i % 500 == 0) Thread.Sleep(5);
                yield return i;
            }
        }
        Assert.That(ReadAhead.Of(Bursty(), 256, 1).ToList(), Is.EqualTo(Enumerable.Range(0, 3000)));
    }

    [Test]
    public void Of_BadArguments_Throw()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => ReadAhead.Of(new[] { 1 }, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => ReadAhead.Of(new[] { 1 }, 16, 0));
        Assert.Throws<ArgumentNullException>(() => ReadAhead.Of<int>(null!));
    }

    private static IEnumerable<int> Throwing(int failAt)
    {
        for (int i = 0; ; i++)
        {
            if (i == failAt) throw TraceFormatException.ForFile("t.bt", $"bad record {failAt}");
            yield return i;
        }
    }

    private static IEnumerable<int> Endless(ManualResetEventSlim disposed, Action produced)
    {
        try
        {
            for (int i = 0; ; i++)
            {
                produced();
                yield return i;
            }
        }
        finally { disposed.Set(); }
    }
}
