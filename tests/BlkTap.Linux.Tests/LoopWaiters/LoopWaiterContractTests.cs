using System.Diagnostics;
using BlkTap.Linux;
using BlkTap.Testing;
using NUnit.Framework;

namespace BlkTap.Linux.Tests.LoopWaiters;

/// <summary>The <see cref="ILoopWaiter"/> wake contract, run against every implementation.</summary>
[TestFixture(typeof(EventLoopWaiter))]
[TestFixture(typeof(EpollLoopWaiter))]
public class LoopWaiterContractTests<TWaiter> where TWaiter : ILoopWaiter, new()
{
    private static readonly TimeSpan Patience = Waits.Deadline;
    private TWaiter _waiter = default!;

    [SetUp]
    public void CreateWaiter()
    {
        if (typeof(TWaiter) == typeof(EpollLoopWaiter) && !EpollLoopWaiter.IsSupported)
            Assert.Ignore("EpollLoopWaiter needs Linux on x86_64");
        _waiter = new TWaiter();
    }

    [TearDown]
    public void DisposeWaiter()
    {
        // A Wait a failed test left blocked on another thread returns after this.
        _waiter?.Wake();
        _waiter?.Dispose();
    }

    /// <summary>Wait on a thread of its own, so that a Wait that never returns fails the test instead of hanging it.</summary>
    private Task<int> WaitOnThread(int timeoutMs) =>
        Task.Factory.StartNew(() => _waiter.Wait(timeoutMs, new PollReady[4]), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);

    [Test]
    public void Wait_WakeBeforeWait_ReturnsAtOnce()
    {
        _waiter.Wake();
        var wait = WaitOnThread(-1);
        Assert.That(wait.Wait(Patience), Is.True, "a latched Wake must end the next Wait(-1)");
        Assert.That(wait.Result, Is.Zero);
    }

    [Test]
    public void Wait_ZeroTimeoutWithoutWake_ReturnsZeroAtOnce()
    {
        var clock = Stopwatch.StartNew();
        Assert.That(_waiter.Wait(0, new PollReady[4]), Is.Zero);
        Assert.That(clock.Elapsed, Is.LessThan(TimeSpan.FromSeconds(30)), "Wait(0) polls; a Wait that blocked without a Wake would never return");
    }

    [Test]
    public void Wait_LatchedWakeConsumed_NextWaitSleepsForItsTimeout()
    {
        _waiter.Wake();
        Assert.That(_waiter.Wait(0, new PollReady[4]), Is.Zero);
        var clock = Stopwatch.StartNew();
        Assert.That(_waiter.Wait(200, new PollReady[4]), Is.Zero);
        Assert.That(clock.ElapsedMilliseconds, Is.GreaterThanOrEqualTo(150), "the one Wake was consumed by Wait(0)");
    }

    [Test]
    public void Wake_FromAnotherThread_EndsBlockingWait()
    {
        var wait = WaitOnThread(-1);
        Assert.That(wait.Wait(200), Is.False, "nothing woke it yet");
        Task.Run(_waiter.Wake);
        Assert.That(wait.Wait(Patience), Is.True);
        Assert.That(wait.Result, Is.Zero);
    }

    [Test]
    public void Wake_ManyConcurrentWhileLooping_LoopEndsAndWakeStillLatches()
    {
        bool done = false;
        long passes = 0;
        var loop = Task.Factory.StartNew(() =>
        {
            var ready = new PollReady[4];
            while (!Volatile.Read(ref done)) { _waiter.Wait(-1, ready); passes++; }
        }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        var wakers = Enumerable.Range(0, 4).Select(_ => Task.Run(() => { for (int i = 0; i < 20_000; i++) _waiter.Wake(); })).ToArray();
        Assert.That(Task.WaitAll(wakers, Patience), Is.True);
        Volatile.Write(ref done, true);
        _waiter.Wake();
        Assert.That(loop.Wait(Patience), Is.True, "the last Wake must end the loop's Wait");
        Assert.That(passes, Is.GreaterThan(0));

        // No wake is stuck half-way: one Wait(0) clears whatever is latched, then the waiter sleeps, then wakes again.
        _waiter.Wait(0, new PollReady[4]);
        var clock = Stopwatch.StartNew();
        Assert.That(_waiter.Wait(100, new PollReady[4]), Is.Zero);
        Assert.That(clock.ElapsedMilliseconds, Is.GreaterThanOrEqualTo(50), "a stale wake stayed latched");
        _waiter.Wake();
        var wait = WaitOnThread(-1);
        Assert.That(wait.Wait(Patience), Is.True, "a Wake after the storm must still latch");
    }

    [Test]
    public void Dispose_Twice_DoesNotThrow()
    {
        var waiter = new TWaiter();
        waiter.Dispose();
        Assert.DoesNotThrow(waiter.Dispose);
    }
}
