using System.Collections.Concurrent;
using BlkTap.Linux;
using BlkTap.Linux.Interop;
using BlkTap.Loop;
using BlkTap.Testing;
using NUnit.Framework;

namespace BlkTap.Linux.Tests.Loop;

/// <summary>
/// The <see cref="IEventLoop"/> contract, run on an <see cref="EventLoop"/> over each waiter: descriptors (where the
/// waiter watches them), interest changes, detach inside a handler, posting from other threads, stop, end-of-pass
/// ordering, and handlers that throw. Every wait has a generous deadline; nothing sleeps.
/// </summary>
[TestFixture(typeof(EventLoopWaiter))]
[TestFixture(typeof(EpollLoopWaiter))]
public class EventLoopTests<TWaiter> where TWaiter : ILoopWaiter, new()
{
    private static readonly TimeSpan Patience = Waits.Deadline;
    private readonly ConcurrentQueue<(string What, Exception Exception)> _failures = new();
    private EventLoop _loop = null!;
    private Task _run = null!;

    [SetUp]
    public void StartLoop()
    {
        if (typeof(TWaiter) == typeof(EpollLoopWaiter) && !EpollLoopWaiter.IsSupported) Assert.Ignore("EpollLoopWaiter needs Linux on x86_64");
        _loop = new EventLoop(new EventLoopOptions { Name = "contract", Waiter = new TWaiter(), HandlerFailed = (w, e) => _failures.Enqueue((w, e)) });
        _run = _loop.RunAsync();
    }

    [TearDown]
    public void StopLoop()
    {
        if (_loop == null) return;
        _loop.Stop();
        _run.Wait(Patience);
        _loop.Dispose();
    }

    private void RequireDescriptors()
    {
        if (!_loop.SupportsDescriptors) Assert.Ignore($"{typeof(TWaiter).Name} watches no descriptors");
    }

    /// <summary>Posts <paramref name="action"/> and waits until the loop has run it: a whole pass has gone by.</summary>
    private Task OnLoop(Action action)
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _loop.Post(() => { try { action(); done.TrySetResult(); } catch (Exception e) { done.TrySetException(e); } });
        return done.Task.WaitAsync(Patience);
    }

    private static void WriteByte(SafeFdHandle fd) => Assert.That(Libc.Write(fd, [7]), Is.EqualTo(1));

    [Test]
    public async Task Attach_PipeWritten_HandlerRunsOnLoopThreadWithReadable()
    {
        RequireDescriptors();
        var (read, write) = Libc.Pipe();
        using (read) using (write)
        {
            var seen = new TaskCompletionSource<(bool OnLoop, PollEvents Events, int Bytes)>(TaskCreationOptions.RunContinuationsAsynchronously);
            using var reg = _loop.Attach(read.Fd, PollEvents.Readable, events =>
            {
                var buffer = new byte[16];
                int n = Libc.Read(read, buffer); // level-triggered: read it, or the handler runs again next pass
                seen.TrySetResult((_loop.IsLoopThread, events, n));
            });
            WriteByte(write);
            Assert.That(await seen.Task.WaitAsync(Patience), Is.EqualTo((true, PollEvents.Readable, 1)));
        }
    }

    [Test]
    public async Task ChangeInterest_NoneThenWritable_HandlerRunsOnlyOnceAskedForWritable()
    {
        RequireDescriptors();
        var (read, write) = Libc.Pipe();
        using (read) using (write)
        {
            int calls = 0;
            var writable = new TaskCompletionSource<PollEvents>(TaskCreationOptions.RunContinuationsAsynchronously);
            PollRegistration? reg = null;
            reg = _loop.Attach(write.Fd, PollEvents.None, events =>
            {
                Interlocked.Increment(ref calls);
                _loop.ChangeInterest(reg!, PollEvents.None); // written once; an empty pipe stays writable
                writable.TrySetResult(events);
            });
            await OnLoop(() => { });
            await OnLoop(() => { });
            Assert.That(Volatile.Read(ref calls), Is.Zero, "interest None: a writable pipe is not reported");
            await OnLoop(() => reg.SetInterest(PollEvents.Writable));
            Assert.That(await writable.Task.WaitAsync(Patience), Is.EqualTo(PollEvents.Writable));
            await OnLoop(() => { });
            Assert.That(Volatile.Read(ref calls), Is.EqualTo(1), "back to None inside the handler");
            reg.Dispose();
        }
    }

    [Test]
    public void ChangeInterest_WaitHandleRegistration_Throws()
    {
        using var signal = new AutoResetEvent(false);
        using var reg = _loop.Attach(signal, _ => { });
        Assert.Throws<InvalidOperationException>(() => _loop.ChangeInterest(reg, PollEvents.Readable));
    }

    [Test]
    public async Task Detach_InsideItsOwnHandlerWithDataUnread_HandlerRunsNoMore()
    {
        RequireDescriptors();
        var (read, write) = Libc.Pipe();
        using (read) using (write)
        {
            int calls = 0;
            var first = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            PollRegistration? reg = null;
            reg = _loop.Attach(read.Fd, PollEvents.Readable, _ =>
            {
                Interlocked.Increment(ref calls);
                _loop.Detach(reg!); // the byte stays unread: level-triggered, it would be reported every pass
                first.TrySetResult();
            });
            WriteByte(write);
            await first.Task.WaitAsync(Patience);
            await OnLoop(() => { });
            await OnLoop(() => { });
            Assert.That(Volatile.Read(ref calls), Is.EqualTo(1));
            reg.Dispose(); // idempotent
        }
    }

    [Test]
    public void Attach_DescriptorOnALoopThatWatchesNone_ThrowsNotSupported()
    {
        if (_loop.SupportsDescriptors) Assert.Ignore($"{typeof(TWaiter).Name} watches descriptors");
        Assert.Throws<NotSupportedException>(() => _loop.Attach(0, PollEvents.Readable, _ => { }));
    }

    [Test]
    public async Task Attach_WaitHandleSignalled_HandlerRunsOnLoopThreadWithSignalled()
    {
        using var signal = new AutoResetEvent(false);
        var seen = new TaskCompletionSource<(bool, PollEvents)>(TaskCreationOptions.RunContinuationsAsynchronously);
        using var reg = _loop.Attach(signal, events => seen.TrySetResult((_loop.IsLoopThread, events)));
        signal.Set();
        Assert.That(await seen.Task.WaitAsync(Patience), Is.EqualTo((true, PollEvents.Signalled)));
    }

    [Test]
    public async Task Post_FromFourThreads_EveryItemRunsOnLoopThreadInEachThreadsOrder()
    {
        const int Threads = 4, Each = 500;
        var seen = new List<(int Thread, int Index)>();
        bool allOnLoop = true;
        var done = new CountdownEvent(Threads * Each);
        var producers = Enumerable.Range(0, Threads).Select(t => Task.Factory.StartNew(() =>
        {
            for (int i = 0; i < Each; i++)
            {
                int index = i;
                _loop.Post(() => { seen.Add((t, index)); allOnLoop &= _loop.IsLoopThread; done.Signal(); });
            }
        }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default)).ToArray();
        await Task.WhenAll(producers).WaitAsync(Patience);
        Assert.That(done.Wait(Patience), Is.True, "every posted action ran");
        await OnLoop(() => { });
        Assert.That(allOnLoop, Is.True);
        for (int t = 0; t < Threads; t++)
            Assert.That(seen.Where(s => s.Thread == t).Select(s => s.Index), Is.EqualTo(Enumerable.Range(0, Each)), $"thread {t}'s order");
    }

    private sealed class RecordingWork(EventLoop loop) : ILoopWorkHandler
    {
        public readonly List<(object? State, int Code, bool OnLoop)> Runs = new();
        public void RunOnLoop(object? state, int code) => Runs.Add((state, code, loop.IsLoopThread));
    }

    [Test]
    public async Task Post_WorkHandlerWithStateAndCode_RunsWithThemInPostingOrderWithActions()
    {
        var work = new RecordingWork(_loop);
        var order = new List<string>();
        var state = new object();
        await OnLoop(() =>
        {
            // Posted from the loop thread itself: they run in the next pass, in this order.
            _loop.Post(work, state, 42);
            _loop.Post(() => order.Add($"action after {work.Runs.Count}"));
            _loop.Post(work, null, -1);
        });
        await OnLoop(() => { });
        Assert.That(work.Runs, Is.EqualTo(new[] { (state, 42, true), ((object?)null, -1, true) }));
        Assert.That(order, Is.EqualTo(new[] { "action after 1" }));
    }

    [Test]
    public async Task Stop_LoopAsleep_RunReturns()
    {
        await OnLoop(() => { }); // running, and about to sleep with nothing to do
        _loop.Stop();
        Assert.That(_run.Wait(Patience), Is.True, "Stop wakes the waiter and the run returns");
        Assert.That(_run.IsCompletedSuccessfully, Is.True);
    }

    [Test]
    public async Task Dispose_WhileRunning_RunReturnsAndRegistrationsAreDetached()
    {
        using var signal = new AutoResetEvent(false);
        int calls = 0;
        _loop.Attach(signal, _ => Interlocked.Increment(ref calls));
        await OnLoop(() => { });
        _loop.Dispose();
        Assert.That(_run.Wait(Patience), Is.True);
        signal.Set();
        Assert.That(signal.WaitOne(0), Is.True, "no thread-pool wait consumes the signal any more");
        Assert.That(Volatile.Read(ref calls), Is.Zero);
    }

    private sealed class Recorder(List<string> log, string name, Action? then = null) : IEndOfPassHandler
    {
        public void OnEndOfPass() { log.Add(name); then?.Invoke(); }
    }

    [Test]
    public async Task RunAtEndOfPass_ScheduledByPostedWork_RunsAfterThePassWorkAndItsFinishersOnce()
    {
        var log = new List<string>();
        var finisher = new Recorder(log, "finisher");
        _loop.AddPassFinisher(finisher);
        try
        {
            var again = new Recorder(log, "end 2");
            var first = new Recorder(log, "end 1", () => _loop.RunAtEndOfPass(again));
            var ran = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _loop.Post(() =>
            {
                log.Clear();
                _loop.RunAtEndOfPass(first);
                log.Add("work a");
                _loop.Post(() => { log.Add("work b (next pass)"); ran.TrySetResult(); });
            });
            await ran.Task.WaitAsync(Patience);
            await OnLoop(() => { });
            // Pass 1: its work, the finisher, its end handler. Pass 2: its work, finisher, the handler end 1 scheduled.
            Assert.That(log.Take(6), Is.EqualTo(new[] { "work a", "finisher", "end 1", "work b (next pass)", "finisher", "end 2" }));
            Assert.That(log.Count(l => l.StartsWith("end", StringComparison.Ordinal)), Is.EqualTo(2), "each ran once");
        }
        finally { _loop.RemovePassFinisher(finisher); }
    }

    [Test]
    public async Task Post_ActionThrows_ReportedAndTheLoopRunsTheNextItem()
    {
        var boom = new InvalidOperationException("boom");
        _loop.Post(() => throw boom);
        bool after = false;
        await OnLoop(() => after = true);
        Assert.That(after, Is.True, "the loop survived");
        Assert.That(_failures.Select(f => (f.What, f.Exception)), Does.Contain(("posted action threw", (Exception)boom)));
    }

    [Test]
    public async Task RunAtEndOfPass_HandlerThrows_ReportedAndTheNextHandlerStillRuns()
    {
        var log = new List<string>();
        var boom = new InvalidOperationException("end boom");
        await OnLoop(() =>
        {
            _loop.RunAtEndOfPass(new Recorder(log, "thrower", () => throw boom));
            _loop.RunAtEndOfPass(new Recorder(log, "next"));
        });
        await OnLoop(() => { });
        Assert.That(log, Is.EqualTo(new[] { "thrower", "next" }));
        Assert.That(_failures.Select(f => f.Exception), Does.Contain(boom));
    }

    [Test]
    public async Task Attach_DescriptorHandlerThrows_ReportedAndLoopKeepsServing()
    {
        RequireDescriptors();
        var (read, write) = Libc.Pipe();
        using (read) using (write)
        {
            var boom = new InvalidOperationException("handler boom");
            int calls = 0;
            var once = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var twice = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            using var reg = _loop.Attach(read.Fd, PollEvents.Readable, _ =>
            {
                Libc.Read(read, new byte[16]);
                if (Interlocked.Increment(ref calls) == 1) { once.TrySetResult(); throw boom; }
                twice.TrySetResult();
            });
            WriteByte(write);
            await once.Task.WaitAsync(Patience);
            WriteByte(write); // the pipe is empty again: only a live registration sees this byte
            await twice.Task.WaitAsync(Patience);
            Assert.That(_failures.Select(f => (f.What, f.Exception)), Does.Contain(("poll handler threw", (Exception)boom)));
        }
    }
}
