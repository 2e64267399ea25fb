using BlkTap.Loop;
using NUnit.Framework;

namespace BlkTap.Abstractions.Tests.Loop;

/// <summary>An <see cref="EventLoop"/> driven by an external scheduler (the emulator's deterministic mode): no thread of its own.</summary>
[TestFixture]
public class EventLoopExternalDriverTests
{
    [Test]
    public void RunOnce_ExternalDriver_WakeCalledPerPostAndWorkRunsOnTheCaller()
    {
        using var loop = new EventLoop();
        int wakes = 0;
        loop.UseExternalDriver(() => wakes++);
        Assert.That(loop.SupportsDescriptors, Is.False, "an external driver never sleeps in the waiter");
        var order = new List<int>();
        bool onLoop = false;
        loop.Post(() => order.Add(1));
        loop.Post(() => { order.Add(2); onLoop = loop.IsLoopThread; loop.Post(() => order.Add(3)); });
        Assert.That((wakes, loop.HasPendingWork), Is.EqualTo((2, true)));
        Assert.That(loop.RunOnce(), Is.EqualTo(2), "only what was queued when the pass began");
        Assert.That(order, Is.EqualTo(new[] { 1, 2 }));
        Assert.That(onLoop, Is.True, "the caller of RunOnce is the loop thread");
        Assert.That(loop.RunOnce(), Is.EqualTo(1));
        Assert.That(order, Is.EqualTo(new[] { 1, 2, 3 }));
        Assert.That(loop.HasPendingWork, Is.False);
    }

    [Test]
    public void UseExternalDriver_WorkAlreadyQueued_WakesAtOnce()
    {
        using var loop = new EventLoop();
        loop.Post(() => { });
        int wakes = 0;
        loop.UseExternalDriver(() => wakes++);
        Assert.That(wakes, Is.EqualTo(1));
    }

    [Test]
    public void Dispose_Twice_AndStopAfterDispose_DoNotThrow()
    {
        var loop = new EventLoop();
        loop.Dispose();
        Assert.DoesNotThrow(loop.Dispose);
        Assert.DoesNotThrow(loop.Stop);
    }
}
