using System.Diagnostics;
using BlkTap.Linux;
using BlkTap.Testing;
using NUnit.Framework;

namespace BlkTap.Linux.Tests.LoopWaiters;

/// <summary><see cref="EpollLoopWaiter"/>'s descriptor watching, on loopback sockets.</summary>
[TestFixture]
public class EpollLoopWaiterTests
{
    private static readonly TimeSpan Patience = Waits.Deadline;
    private EpollLoopWaiter _waiter = null!;
    private readonly PollReady[] _ready = new PollReady[8];

    [SetUp]
    public void CreateWaiter()
    {
        if (!EpollLoopWaiter.IsSupported) Assert.Ignore("EpollLoopWaiter needs Linux on x86_64");
        _waiter = new EpollLoopWaiter();
    }

    [TearDown]
    public void DisposeWaiter() => _waiter?.Dispose();

    private PollReady[] Wait(int timeoutMs) => _ready[.._waiter.Wait(timeoutMs, _ready)];

    [Test]
    public void SupportsDescriptors_Always_IsTrue() => Assert.That(_waiter.SupportsDescriptors, Is.True);

    [Test]
    public void Wait_PeerWrites_ReportsReadableWithTokenWhileUnread()
    {
        using var pair = new SocketPair();
        _waiter.Watch(pair.Fd, PollEvents.Readable, 42);
        Assert.That(Wait(0), Is.Empty, "nothing sent yet");
        pair.PeerSends();
        Assert.That(Wait(5000), Is.EqualTo(new[] { new PollReady(42, PollEvents.Readable) }));
        Assert.That(Wait(0), Is.EqualTo(new[] { new PollReady(42, PollEvents.Readable) }), "level-triggered: still unread");
        pair.Watched.Receive(new byte[16]);
        Assert.That(Wait(0), Is.Empty, "read");
    }

    [Test]
    public void Modify_ToNoneWithDataUnread_StopsReportsUntilReadableAgain()
    {
        using var pair = new SocketPair();
        _waiter.Watch(pair.Fd, PollEvents.Readable, 1);
        pair.PeerSends();
        Assert.That(Wait(5000), Has.Length.EqualTo(1));
        _waiter.Modify(pair.Fd, PollEvents.None, 1);
        Assert.That(Wait(100), Is.Empty);
        _waiter.Modify(pair.Fd, PollEvents.Readable, 2);
        Assert.That(Wait(5000), Is.EqualTo(new[] { new PollReady(2, PollEvents.Readable) }), "the new token");
    }

    [Test]
    public void Wait_WritableInterest_ReportsWritable()
    {
        using var pair = new SocketPair();
        _waiter.Watch(pair.Fd, PollEvents.Writable, 7);
        Assert.That(Wait(5000), Is.EqualTo(new[] { new PollReady(7, PollEvents.Writable) }));
        pair.PeerSends();
        _waiter.Modify(pair.Fd, PollEvents.Readable | PollEvents.Writable, 7);
        Assert.That(Wait(5000), Is.EqualTo(new[] { new PollReady(7, PollEvents.Readable | PollEvents.Writable) }));
    }

    [Test]
    public void Wait_PeerResetsWhileInterestNone_ReportsReadableAndWritable()
    {
        using var pair = new SocketPair();
        _waiter.Watch(pair.Fd, PollEvents.None, 9);
        Assert.That(Wait(0), Is.Empty);
        pair.PeerResets();
        Assert.That(Wait(5000), Is.EqualTo(new[] { new PollReady(9, PollEvents.Readable | PollEvents.Writable) }));
    }

    [Test]
    public void Wait_PeerShutsOnlyItsSendingSideWhileInterestNone_NotReported()
    {
        // No EPOLLRDHUP: a half-closed peer (which may still read replies) must not wake the loop on every pass.
        using var pair = new SocketPair();
        _waiter.Watch(pair.Fd, PollEvents.None, 11);
        pair.Peer.Shutdown(System.Net.Sockets.SocketShutdown.Send);
        Assert.That(Wait(100), Is.Empty);
        _waiter.Modify(pair.Fd, PollEvents.Readable, 11);
        Assert.That(Wait(5000), Is.EqualTo(new[] { new PollReady(11, PollEvents.Readable) }), "the end of stream is readable");
    }

    [Test]
    public void Unwatch_WatchedDescriptor_StopsReports()
    {
        using var pair = new SocketPair();
        _waiter.Watch(pair.Fd, PollEvents.Readable, 3);
        pair.PeerSends();
        Assert.That(Wait(5000), Has.Length.EqualTo(1));
        _waiter.Unwatch(pair.Fd);
        Assert.That(Wait(100), Is.Empty);
    }

    [Test]
    public void Unwatch_NotWatchedOrClosedDescriptor_IsIgnored()
    {
        var pair = new SocketPair();
        int fd = pair.Fd;
        Assert.DoesNotThrow(() => _waiter.Unwatch(fd), "ENOENT");
        _waiter.Watch(fd, PollEvents.Readable, 4);
        pair.Dispose();
        Assert.DoesNotThrow(() => _waiter.Unwatch(fd), "EBADF (or ENOENT if the number was reused)");
    }

    [Test]
    public void Watch_AlreadyWatched_ThrowsEEXIST()
    {
        using var pair = new SocketPair();
        _waiter.Watch(pair.Fd, PollEvents.Readable, 5);
        var ex = Assert.Throws<LinuxInteropException>(() => _waiter.Watch(pair.Fd, PollEvents.Readable, 6))!;
        Assert.That((ex.Call, ex.Errno), Is.EqualTo(("epoll_ctl(EPOLL_CTL_ADD)", 17)));
    }

    [Test]
    public void Modify_NotWatched_ThrowsENOENT()
    {
        using var pair = new SocketPair();
        var ex = Assert.Throws<LinuxInteropException>(() => _waiter.Modify(pair.Fd, PollEvents.Readable, 6))!;
        Assert.That((ex.Call, ex.Errno), Is.EqualTo(("epoll_ctl(EPOLL_CTL_MOD)", 2)));
    }

    [Test]
    public void Watch_ReservedTokenOrSignalledInterest_ThrowsArgumentException()
    {
        using var pair = new SocketPair();
        Assert.Multiple(() =>
        {
            Assert.Throws<ArgumentException>(() => _waiter.Watch(pair.Fd, PollEvents.Readable, EpollLoopWaiter.WakeToken));
            Assert.Throws<ArgumentOutOfRangeException>(() => _waiter.Watch(pair.Fd, PollEvents.Signalled, 1));
            Assert.Throws<ArgumentOutOfRangeException>(() => _waiter.Watch(-1, PollEvents.Readable, 1));
        });
    }

    [Test]
    public void Wait_MoreReadyThanSpan_EveryDescriptorReportedWithinTwoWaits()
    {
        // Level-triggered, and one more ready descriptor than the span holds: none may be starved.
        var pairs = Enumerable.Range(0, 3).Select(_ => new SocketPair()).ToArray();
        try
        {
            for (int i = 0; i < pairs.Length; i++) { _waiter.Watch(pairs[i].Fd, PollEvents.Readable, 100 + i); pairs[i].PeerSends(); }
            var span = new PollReady[2];
            var seen = new HashSet<long>();
            for (int pass = 0; pass < 2; pass++)
            {
                int n = _waiter.Wait(60_000, span);
                Assert.That(n, Is.LessThanOrEqualTo(span.Length));
                foreach (var r in span[..n]) seen.Add(r.Token);
            }
            Assert.That(seen, Is.EquivalentTo(new long[] { 100, 101, 102 }));
        }
        finally { foreach (var p in pairs) p.Dispose(); }
    }

    [Test]
    public void Wait_ReadyDescriptorAndWakes_AllocatesNothing()
    {
        using var pair = new SocketPair();
        _waiter.Watch(pair.Fd, PollEvents.Readable, 1);
        pair.PeerSends();
        Span<PollReady> ready = stackalloc PollReady[64];
        for (int i = 0; i < 100; i++) { _waiter.Wake(); _waiter.Wait(0, ready); }
        long before = GC.GetAllocatedBytesForCurrentThread();
        int reported = 0;
        for (int i = 0; i < 10_000; i++) { _waiter.Wake(); reported += _waiter.Wait(0, ready); }
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.That(reported, Is.EqualTo(10_000));
        Assert.That(allocated, Is.Zero);
    }

    [Test]
    public void Dispose_WhileWaitBlocks_EndsTheWait()
    {
        var wait = Task.Factory.StartNew(() =>
        {
            try { return _waiter.Wait(-1, new PollReady[4]); }
            catch (ObjectDisposedException) { return -1; }
        }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        Assert.That(wait.Wait(100), Is.False);
        _waiter.Dispose();
        Assert.That(wait.Wait(Patience), Is.True, "Dispose must wake a blocked Wait");
        Assert.Multiple(() =>
        {
            Assert.DoesNotThrow(_waiter.Wake, "Wake after Dispose is ignored");
            Assert.DoesNotThrow(() => _waiter.Unwatch(0), "Unwatch after Dispose is ignored");
            Assert.Throws<ObjectDisposedException>(() => _waiter.Wait(0, new PollReady[1]));
            Assert.Throws<ObjectDisposedException>(() => _waiter.Watch(0, PollEvents.Readable, 1));
        });
    }

    [Test]
    public void Wait_TimeoutWithNothingReady_ReturnsZeroAfterTimeout()
    {
        var clock = Stopwatch.StartNew();
        Assert.That(Wait(100), Is.Empty);
        Assert.That(clock.ElapsedMilliseconds, Is.GreaterThanOrEqualTo(90));
    }
}
