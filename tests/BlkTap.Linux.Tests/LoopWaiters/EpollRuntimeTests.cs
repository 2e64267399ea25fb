using BlkTap.Linux;
using BlkTap.Testing;
using NUnit.Framework;

namespace BlkTap.Linux.Tests.LoopWaiters;

/// <summary>A <see cref="TapRuntime"/> whose loop sleeps in an <see cref="EpollLoopWaiter"/>.</summary>
[TestFixture]
public class EpollRuntimeTests
{
    private static readonly TimeSpan Patience = Waits.Deadline;
    private TapRuntime _runtime = null!;
    private Task _loop = null!;

    [SetUp]
    public void StartRuntime()
    {
        if (!EpollLoopWaiter.IsSupported) Assert.Ignore("EpollLoopWaiter needs Linux on x86_64");
        _runtime = new TapRuntime(new TapRuntimeOptions { Name = "epoll-test", Waiter = new EpollLoopWaiter() });
        _loop = _runtime.RunAsync();
    }

    [TearDown]
    public void StopRuntime()
    {
        if (_runtime == null) return;
        _runtime.Stop();
        _loop.Wait(Patience);
        _runtime.Dispose();
    }

    [Test]
    public void SupportsDescriptors_EpollWaiter_IsTrue() => Assert.That(_runtime.SupportsDescriptors, Is.True);

    [Test]
    public async Task AttachPoll_PeerWrites_HandlerRunsOnLoopThreadAndReadsData()
    {
        using var pair = new SocketPair();
        var received = new TaskCompletionSource<(bool OnLoop, PollEvents Events, int Bytes)>(TaskCreationOptions.RunContinuationsAsynchronously);
        using var reg = _runtime.AttachPoll(pair.Fd, PollEvents.Readable, events =>
        {
            // Level-triggered: read what is there, or the handler runs again on the next pass.
            int n = pair.Watched.Receive(new byte[pair.Watched.Available]);
            received.TrySetResult((_runtime.IsLoopThread, events, n));
        });
        pair.PeerSends(5);
        var (onLoop, ready, bytes) = await received.Task.WaitAsync(Patience);
        Assert.That((onLoop, ready, bytes), Is.EqualTo((true, PollEvents.Readable, 5)));
    }

    [Test]
    public async Task AttachPollSocket_EpollLoop_LoopThreadPollsTheSocketAndDetachStopsIt()
    {
        using var pair = new SocketPair();
        pair.Watched.Blocking = false;
        int calls = 0, bytes = 0;
        var got = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
        var reg = _runtime.AttachPoll(pair.Watched, events =>
        {
            Interlocked.Increment(ref calls);
            var buffer = new byte[64];
            while (pair.Watched.Available > 0) Interlocked.Add(ref bytes, pair.Watched.Receive(buffer));
            if (Volatile.Read(ref bytes) >= 3) got.TrySetResult(_runtime.IsLoopThread && events == PollEvents.Readable);
        });
        pair.PeerSends(3);
        Assert.That(await got.Task.WaitAsync(Patience), Is.True, "the handler runs on the loop thread and sees Readable");
        reg.Dispose();
        int before = Volatile.Read(ref calls);
        pair.PeerSends(2);
        await PostAndWait(() => { });
        await PostAndWait(() => { });
        Assert.That(Volatile.Read(ref calls), Is.EqualTo(before), "detached: unread data runs no handler");
        Assert.That(pair.Watched.Available, Is.EqualTo(2));
    }

    [Test]
    public async Task AttachPoll_PeerResetsThenDetach_HandlerSeesHangUpAndRunsNoMore()
    {
        using var pair = new SocketPair();
        int calls = 0;
        var hangUp = new TaskCompletionSource<PollEvents>(TaskCreationOptions.RunContinuationsAsynchronously);
        PollRegistration? reg = null;
        reg = _runtime.AttachPoll(pair.Fd, PollEvents.None, events =>
        {
            Interlocked.Increment(ref calls);
            _runtime.DetachPoll(reg!);
            hangUp.TrySetResult(events);
        });
        pair.PeerResets();
        Assert.That(await hangUp.Task.WaitAsync(Patience), Is.EqualTo(PollEvents.Readable | PollEvents.Writable));
        await PostAndWait(() => { });
        await PostAndWait(() => { });
        Assert.That(Volatile.Read(ref calls), Is.EqualTo(1), "level-triggered hang-up, but detached");
    }

    [Test]
    public async Task SetInterest_NoneWhileDataUnread_HandlerPausesUntilReadableAgain()
    {
        using var pair = new SocketPair();
        int calls = 0;
        var first = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var again = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        PollRegistration? reg = null;
        reg = _runtime.AttachPoll(pair.Fd, PollEvents.Readable, _ =>
        {
            // Throttled reader: leaves the data unread and stops asking.
            if (Interlocked.Increment(ref calls) == 1) { reg!.SetInterest(PollEvents.None); first.TrySetResult(); }
            else again.TrySetResult();
        });
        pair.PeerSends();
        await first.Task.WaitAsync(Patience);
        // Two whole loop passes with the data still unread: a report would have reached the handler.
        await PostAndWait(() => { });
        await PostAndWait(() => { });
        Assert.That(Volatile.Read(ref calls), Is.EqualTo(1), "interest None: unread data is not reported");
        reg.SetInterest(PollEvents.Readable);
        await again.Task.WaitAsync(Patience);
        reg.Dispose();
    }

    [Test]
    public async Task Post_LoopAsleepInEpoll_RunsOnLoopThreadAndStopEndsRun()
    {
        using var pair = new SocketPair();
        using var reg = _runtime.AttachPoll(pair.Fd, PollEvents.Readable, _ => { });
        await Task.Delay(50); // let the loop go to sleep in epoll_wait
        bool onLoop = false;
        await PostAndWait(() => onLoop = _runtime.IsLoopThread);
        Assert.That(onLoop, Is.True);
        _runtime.Stop();
        Assert.That(_loop.Wait(Patience), Is.True, "Stop must wake the loop out of epoll_wait");
    }

    private Task PostAndWait(Action action)
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _runtime.Post(() => { action(); done.TrySetResult(); });
        return done.Task.WaitAsync(Patience);
    }
}
