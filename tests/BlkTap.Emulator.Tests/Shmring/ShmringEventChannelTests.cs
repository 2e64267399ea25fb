using System.Collections.Concurrent;
using System.Net.Sockets;
using BlkTap.Emulator.Internal;
using BlkTap.Loop;
using BlkTap.Testing;
using Microsoft.Extensions.Time.Testing;
using NUnit.Framework;

namespace BlkTap.Emulator.Tests.Shmring;

/// <summary>
/// The shmring event channel's <see cref="IEventChannel.HoldDeliveries"/> (XSA-332): while held the channel is out of the
/// loop's poll set, so a frontend's notification bytes wait in the socket; when the delay ends (a fake clock here) they
/// make one delivery. A real loop on its own thread over each waiter (a socket watched by .NET's engine or by the loop's
/// epoll), a real Unix socket pair; every wait has a deadline, nothing sleeps.
/// </summary>
[TestFixture(typeof(EventLoopWaiter))]
[TestFixture(typeof(BlkTap.Linux.EpollLoopWaiter))]
public class ShmringEventChannelTests<TWaiter> where TWaiter : ILoopWaiter, new()
{
    private static readonly TimeSpan Patience = Waits.Deadline;
    // NUnit keeps one instance per fixture: SetUp makes these afresh for each test.
    private ConcurrentQueue<Exception> _failures = null!;
    private string _dir = null!;
    private EventLoop _loop = null!;
    private Task _run = null!;
    private FakeTimeProvider _time = null!;
    private Socket _frontend = null!;
    private ShmringEventChannel _channel = null!;
    private int _deliveries;
    private SemaphoreSlim _delivered = null!;
    private ConcurrentQueue<string?> _hangups = null!;
    private SemaphoreSlim _hungUp = null!;

    [SetUp]
    public void Connect()
    {
        if (typeof(TWaiter) == typeof(BlkTap.Linux.EpollLoopWaiter) && !BlkTap.Linux.EpollLoopWaiter.IsSupported) Assert.Ignore("EpollLoopWaiter needs Linux on x86_64");
        _failures = new();
        _deliveries = 0;
        _delivered = new SemaphoreSlim(0);
        _hangups = new();
        _hungUp = new SemaphoreSlim(0);
        _dir = Directory.CreateTempSubdirectory("shm-evtchn-").FullName;
        _loop = new EventLoop(new EventLoopOptions { Name = "shm-evtchn", Waiter = new TWaiter(), HandlerFailed = (_, e) => _failures.Enqueue(e) });
        _run = _loop.RunAsync();
        _time = new FakeTimeProvider();
        var path = Path.Combine(_dir, "evtchn");
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(path));
        listener.Listen(1);
        _frontend = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        _frontend.Connect(new UnixDomainSocketEndPoint(path));
        var backend = listener.Accept();
        _channel = new ShmringEventChannel(backend, _loop, why => { _hangups.Enqueue(why); _hungUp.Release(); }, _time);
        _channel.SetHandler(() => { Interlocked.Increment(ref _deliveries); _delivered.Release(); });
        OnLoop(_channel.Start);
    }

    [TearDown]
    public void Close()
    {
        if (_dir == null) return;
        _frontend?.Dispose();
        if (_loop != null)
        {
            _loop.Post(_channel.Dispose);
            _loop.Stop();
            _run.Wait(Patience);
            _loop.Dispose();
        }
        Directory.Delete(_dir, recursive: true);
        _dir = null!;
        Assert.That(_failures, Is.Empty, "no handler of the loop threw");
    }

    /// <summary>Runs <paramref name="action"/> on the loop and waits until it ran: a whole pass has gone by.</summary>
    private void OnLoop(Action action) => Waits.OnLoop(_loop, action);

    private async Task WaitDeliveryAsync() =>
        Assert.That(await _delivered.WaitAsync(Patience), Is.True, "a delivery within the deadline");

    /// <summary>The frontend notifies without blocking until its socket is full; returns how many bytes went.</summary>
    private int NotifyUntilFull()
    {
        _frontend.Blocking = false;
        var chunk = new byte[4096];
        int sent = 0;
        while (true)
        {
            int n = _frontend.Send(chunk, 0, chunk.Length, SocketFlags.None, out var error);
            if (error == SocketError.WouldBlock) return sent;
            Assert.That(error, Is.EqualTo(SocketError.Success));
            sent += n;
        }
    }

    [Test]
    public async Task HoldDeliveries_StormDuringHold_NothingDeliveredThenOneDeliveryWhenTheDelayEnds()
    {
        _frontend.Send([1]);
        await WaitDeliveryAsync();

        OnLoop(() => _channel.HoldDeliveries(TimeSpan.FromMilliseconds(8)));
        int sent = NotifyUntilFull(); // nobody drains a held channel, so the frontend's buffer fills up
        Assert.That(sent, Is.GreaterThan(0));
        OnLoop(() => { });
        OnLoop(() => { });
        Assert.That(Volatile.Read(ref _deliveries), Is.EqualTo(1), "held: the bytes wait in the socket");
        Assert.That(_channel.Holds, Is.EqualTo(1));

        _time.Advance(TimeSpan.FromMilliseconds(8));
        await WaitDeliveryAsync();
        OnLoop(() => { });
        Assert.That(Volatile.Read(ref _deliveries), Is.EqualTo(2), $"{sent} bytes of notifications make one delivery");
        Assert.That(_frontend.Poll(0, SelectMode.SelectWrite), Is.True, "the channel drained the frontend's notifications");
        Assert.That(_hangups, Is.Empty);
    }

    [Test]
    public async Task HoldDeliveries_HeldAgainBeforeTheEnd_TheLaterDelayCounts()
    {
        OnLoop(() => _channel.HoldDeliveries(TimeSpan.FromMilliseconds(4)));
        OnLoop(() => _channel.HoldDeliveries(TimeSpan.FromMilliseconds(16)));
        _frontend.Send([1]);
        _time.Advance(TimeSpan.FromMilliseconds(4));
        OnLoop(() => { });
        OnLoop(() => { });
        Assert.That(Volatile.Read(ref _deliveries), Is.EqualTo(0), "still held: the second hold moved the end");

        _time.Advance(TimeSpan.FromMilliseconds(12));
        await WaitDeliveryAsync();
        Assert.That(_channel.Holds, Is.EqualTo(2));
    }

    [Test]
    public async Task HoldDeliveries_FromAnotherThread_TakesEffectOnTheLoop()
    {
        _channel.HoldDeliveries(TimeSpan.FromSeconds(1)); // the test's thread, not the loop's
        OnLoop(() => { });
        Assert.That(_channel.Holds, Is.EqualTo(1));
        _frontend.Send([1]);
        _time.Advance(TimeSpan.FromSeconds(1));
        await WaitDeliveryAsync();
    }

    [Test]
    public async Task HoldDeliveries_FrontendHangsUpDuringHold_HangupReportedOnceWhenTheDelayEnds()
    {
        OnLoop(() => _channel.HoldDeliveries(TimeSpan.FromMilliseconds(2)));
        _frontend.Send([1, 1, 1]);
        _frontend.Shutdown(SocketShutdown.Both);
        _frontend.Close();
        _time.Advance(TimeSpan.FromMilliseconds(2));
        Assert.That(await _hungUp.WaitAsync(Patience), Is.True, "the hang-up is seen when the delay ends");
        // Further holds and delay ends change nothing: the hang-up was reported once.
        OnLoop(() => _channel.HoldDeliveries(TimeSpan.FromMilliseconds(2)));
        _time.Advance(TimeSpan.FromMilliseconds(2));
        OnLoop(() => { });
        OnLoop(() => { });
        Assert.That(_hangups.ToArray(), Is.EqualTo(new string?[] { null }), "one hang-up, a clean one");
        Assert.That(Volatile.Read(ref _deliveries), Is.EqualTo(1), "the bytes sent before the hang-up were delivered");
    }

    [Test]
    public void HoldDeliveries_DisposedDuringHold_DelayEndDoesNothing()
    {
        OnLoop(() => _channel.HoldDeliveries(TimeSpan.FromMilliseconds(2)));
        _frontend.Send([1]);
        OnLoop(_channel.Dispose);
        _time.Advance(TimeSpan.FromMilliseconds(2));
        OnLoop(() => { });
        OnLoop(() => { });
        Assert.That(Volatile.Read(ref _deliveries), Is.EqualTo(0));
        Assert.That(_hangups, Is.Empty);
        _channel.HoldDeliveries(TimeSpan.FromMilliseconds(2)); // after dispose: ignored, no throw
        Assert.That(_channel.Holds, Is.EqualTo(1));
    }
}
