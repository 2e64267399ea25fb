using Microsoft.Extensions.Time.Testing;
using NUnit.Framework;

namespace BlkTap.Abstractions.Tests.Runtime;

/// <summary>
/// The XSA-332 backoff of one ring on a fake clock: which events are held back, for how long, and that a held-back
/// event is delivered, never lost, when its delay ends.
/// </summary>
public class SpuriousEventBackoffTests
{
    private sealed class Ring
    {
        public readonly FakeTimeProvider Clock = new();
        public readonly SpuriousEventBackoff Backoff;
        public int Signals;

        public Ring() => Backoff = new SpuriousEventBackoff(() => Interlocked.Increment(ref Signals), channel: null, Clock);

        /// <summary>One wake-up of the loop for a pending event: takes it, maybe finds work, judges it.</summary>
        public void Wake(bool work)
        {
            Assert.That(Backoff.TakeEvent(), Is.True, "a wake-up without a pending event");
            if (work) Backoff.Took();
            Backoff.Handled();
        }
    }

    [Test]
    public void OnEvent_FewerSpuriousThanTheThreshold_EverySignalPassesAtOnce()
    {
        var ring = new Ring();
        for (int i = 0; i < SpuriousEventBackoff.FirstDeferral - 1; i++)
        {
            ring.Backoff.OnEvent();
            Assert.That(ring.Signals, Is.EqualTo(i + 1));
            ring.Wake(work: false);
        }
        ring.Backoff.OnEvent();
        Assert.That(ring.Signals, Is.EqualTo(SpuriousEventBackoff.FirstDeferral));
        Assert.That(ring.Backoff.Deferrals, Is.Zero);
    }

    [Test]
    public void Handled_SpuriousInARow_DelayDoublesUpToOneSecondAndHeldEventArrivesWhenItEnds()
    {
        var ring = new Ring();
        var expected = TimeSpan.FromMilliseconds(1);
        for (int i = 0; i < SpuriousEventBackoff.FirstDeferral - 1; i++) { ring.Backoff.OnEvent(); ring.Wake(work: false); }
        ring.Backoff.OnEvent();
        for (int deferral = 1; deferral <= 14; deferral++)
        {
            ring.Wake(work: false); // the spurious event that (re)starts a delay
            Assert.That(ring.Backoff.Deferred, Is.True);
            Assert.That(ring.Backoff.Deferrals, Is.EqualTo(deferral));
            int before = ring.Signals;
            ring.Backoff.OnEvent(); // held back: no signal before the delay ends
            ring.Backoff.OnEvent();
            ring.Clock.Advance(expected - TimeSpan.FromTicks(1));
            Assert.That(ring.Signals, Is.EqualTo(before), $"deferral {deferral}: signalled before {expected}");
            ring.Clock.Advance(TimeSpan.FromTicks(1));
            Assert.That(ring.Signals, Is.EqualTo(before + 1), $"deferral {deferral}: the held event was not delivered after {expected}");
            Assert.That(ring.Backoff.Deferred, Is.False);
            expected = expected * 2 > SpuriousEventBackoff.MaxDelay ? SpuriousEventBackoff.MaxDelay : expected * 2;
        }
    }

    [Test]
    public void Handled_EventThatFoundWork_EndsTheBackoff()
    {
        var ring = new Ring();
        for (int i = 0; i < SpuriousEventBackoff.FirstDeferral + 4; i++) { ring.Backoff.OnEvent(); ring.Wake(work: false); }
        Assert.That(ring.Backoff.Deferred, Is.True);
        ring.Backoff.OnEvent();
        ring.Clock.Advance(SpuriousEventBackoff.MaxDelay);
        ring.Wake(work: true);
        Assert.That(ring.Backoff.SpuriousInARow, Is.Zero);
        int before = ring.Signals;
        ring.Backoff.OnEvent();
        Assert.That(ring.Signals, Is.EqualTo(before + 1), "an event after work was held back");
    }

    [Test]
    public void Handled_WorkTakenByAnEarlierWakeup_NotSpurious()
    {
        var ring = new Ring();
        for (int i = 0; i < 10; i++)
        {
            ring.Backoff.Took(); // another ring's notification woke the session, which took this ring's requests too
            ring.Backoff.OnEvent(); // this ring's notification, late, finds them gone
            ring.Wake(work: false);
        }
        Assert.That(ring.Backoff.SpuriousInARow, Is.Zero);
        Assert.That(ring.Backoff.Deferrals, Is.Zero);
    }

    [Test]
    public void Dispose_WhileDeferred_HeldEventDroppedAndNoLaterSignal()
    {
        var ring = new Ring();
        for (int i = 0; i < SpuriousEventBackoff.FirstDeferral; i++) { ring.Backoff.OnEvent(); ring.Wake(work: false); }
        Assert.That(ring.Backoff.Deferred, Is.True);
        ring.Backoff.OnEvent();
        int before = ring.Signals;
        ring.Backoff.Dispose();
        ring.Clock.Advance(SpuriousEventBackoff.MaxDelay * 2);
        Assert.That(ring.Signals, Is.EqualTo(before));
    }
}
