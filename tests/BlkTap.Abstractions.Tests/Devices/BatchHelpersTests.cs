using BlkTap.Testing;
using NUnit.Framework;

namespace BlkTap.Abstractions.Tests.Devices;

/// <summary>
/// <see cref="BatchHelpers"/>: the loop and its helper threads share a range of operations; each runs exactly once,
/// <see cref="BatchHelpers.Run"/> returns only after all have, helpers take part (awake or woken from sleep), and an
/// operation that throws is handed to <see cref="IBatchOperations.Fail"/> without ending a thread.
/// </summary>
public class BatchHelpersTests
{
    [TestCase(1)]
    [TestCase(3)]
    public void Run_RandomRanges_EveryOperationRunsOnceBeforeRunReturns(int helperCount)
    {
        // Property: 300 random ranges of 0 to 64 operations at random places of 80 counters, each operation a random
        // amount of spinning; after each Run exactly the range's counters went up by one, and nothing else.
        var ops = new CountingOperations(80);
        using var helpers = new BatchHelpers(ops, helperCount, "test");
        var random = new Random(helperCount);
        var expected = new int[80];
        for (int round = 0; round < 300; round++)
        {
            int start = random.Next(80), end = start + random.Next(Math.Min(64, 80 - start) + 1);
            ops.Work = random.Next(200);
            helpers.Run(start, end);
            for (int i = start; i < end; i++) expected[i]++;
            Assert.That(ops.Snapshot(), Is.EqualTo(expected), $"round {round}: range {start}..{end}");
        }
        Assert.That(ops.Failures, Is.Zero);
    }

    [Test]
    public void Run_FirstOperationWaitsForAnother_ASecondThreadRunsIt()
    {
        // Whoever takes an operation first (the loop or the helper) holds it until another operation has started: only a
        // second thread can start one, so the range completes only if the helper takes part.
        var ops = new RendezvousOperations();
        using var helpers = new BatchHelpers(ops, 1, "test");
        helpers.Run(0, 8);
        Assert.That(ops.TimedOut, Is.False, "a second thread started an operation while the first was held");
        Assert.That(ops.Threads, Has.Count.EqualTo(2));
        Assert.That(helpers.HelperOperations, Is.GreaterThan(0));
    }

    [Test]
    public void Run_AfterTheHelperFellAsleep_WakesIt()
    {
        var ops = new RendezvousOperations();
        using var helpers = new BatchHelpers(ops, 1, "test");
        Assert.That(SpinWait.SpinUntil(() => helpers.Sleeping == 1, Waits.Deadline), Is.True, "the idle helper goes to sleep after its spin");
        helpers.Run(0, 4);
        Assert.That(ops.TimedOut, Is.False, "the sleeping helper was woken and started an operation");
        Assert.That(ops.Threads, Has.Count.EqualTo(2));
        // And again: the helper sleeps and wakes as many times as the loop needs it.
        for (int round = 0; round < 3; round++)
        {
            Assert.That(SpinWait.SpinUntil(() => helpers.Sleeping == 1, Waits.Deadline), Is.True);
            ops.Reset();
            helpers.Run(0, 4);
            Assert.That(ops.TimedOut, Is.False, $"round {round}");
        }
    }

    [Test]
    public void Run_OperationsThrow_FailGetsEachAndTheOthersRun()
    {
        var ops = new CountingOperations(64) { ThrowAt = [3, 17, 40] };
        using var helpers = new BatchHelpers(ops, 2, "test");
        for (int round = 0; round < 100; round++) helpers.Run(0, 64);
        var counts = ops.Snapshot();
        for (int i = 0; i < 64; i++)
            Assert.That(counts[i], Is.EqualTo(ops.ThrowAt.Contains(i) ? 0 : 100), $"operation {i}");
        Assert.That(ops.Failures, Is.EqualTo(300), "every throw went to Fail, once");
    }

    [Test]
    [CancelAfter(60_000)]
    public void Dispose_HelpersAsleepOrSpinning_Returns()
    {
        var ops = new CountingOperations(8);
        var spinning = new BatchHelpers(ops, 2, "test");
        spinning.Run(0, 8);
        spinning.Dispose(); // right after a range: the helpers are spinning
        var sleeping = new BatchHelpers(ops, 2, "test");
        Assert.That(SpinWait.SpinUntil(() => sleeping.Sleeping == 2, Waits.Deadline), Is.True);
        sleeping.Dispose();
        Assert.That(ops.Snapshot(), Is.All.EqualTo(1));
    }

    private sealed class CountingOperations(int size) : IBatchOperations
    {
        private readonly int[] _counts = new int[size];
        public int Work;
        public int[] ThrowAt = [];
        public int Failures;

        public void Run(int op)
        {
            if (ThrowAt.Contains(op)) throw new InvalidOperationException($"operation {op}");
            Thread.SpinWait(Work);
            Interlocked.Increment(ref _counts[op]);
        }

        public void Fail(int op, Exception error)
        {
            Assert.That(error.Message, Is.EqualTo($"operation {op}"));
            Interlocked.Increment(ref Failures);
        }

        public int[] Snapshot() => _counts.ToArray();
    }

    private sealed class RendezvousOperations : IBatchOperations
    {
        private readonly ManualResetEventSlim _second = new();
        private int _started;
        public volatile bool TimedOut;
        public readonly HashSet<int> Threads = [];

        public void Reset()
        {
            _second.Reset();
            _started = 0;
            lock (Threads) Threads.Clear();
        }

        public void Run(int op)
        {
            lock (Threads) Threads.Add(Environment.CurrentManagedThreadId);
            if (Interlocked.Increment(ref _started) == 1)
            {
                if (!_second.Wait(Waits.Deadline)) TimedOut = true;
            }
            else _second.Set();
        }

        public void Fail(int op, Exception error) => throw new AssertionException($"operation {op} threw: {error}");
    }
}
