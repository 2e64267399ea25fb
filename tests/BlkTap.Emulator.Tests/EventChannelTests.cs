using BlkTap.Emulator;
using NUnit.Framework;

namespace BlkTap.Emulator.Tests;

public class EventChannelTests
{
    private static (EmulatedEventChannel Guest, IEventChannel Backend) Pair(XenEmulator emu, EmulatedDomain guest)
    {
        var (port, local) = guest.EventChannels.AllocUnbound(0);
        var remote = emu.EventChannelFactoryFor(0).BindInterdomain(guest.Id, port, out var error);
        Assert.That(error, Is.Null);
        return (local, remote!);
    }

    [Test]
    public void Notify_BoundPair_DeliversToTheOtherEndOffTheNotifierStack()
    {
        using var emu = XenEmulator.CreateDeterministic(3);
        var guest = emu.CreateDomain("guest");
        var (fe, be) = Pair(emu, guest);
        int feEvents = 0, beEvents = 0;
        fe.SetHandler(() => feEvents++);
        be.SetHandler(() => beEvents++);
        emu.RunUntilIdle();
        beEvents = 0; // binding sets the binder's port pending once

        fe.Notify();
        Assert.That(beEvents, Is.EqualTo(0), "delivery must not run on the notifier's stack");
        emu.RunUntilIdle();

        Assert.That(beEvents, Is.EqualTo(1));
        Assert.That(feEvents, Is.EqualTo(0));
    }

    [Test]
    public void Notify_RepeatedBeforeDelivery_CoalescesIntoOneDelivery()
    {
        using var emu = XenEmulator.CreateDeterministic(3);
        var guest = emu.CreateDomain("guest");
        var (fe, be) = Pair(emu, guest);
        var beEnd = (EmulatedEventChannel)be;
        int events = 0;
        be.SetHandler(() => events++);
        emu.RunUntilIdle();
        long deliveriesBefore = beEnd.Deliveries;

        for (int i = 0; i < 5; i++) fe.Notify();
        emu.RunUntilIdle();

        Assert.That(fe.NotificationsSent, Is.EqualTo(5));
        Assert.That(beEnd.Deliveries - deliveriesBefore, Is.EqualTo(1));
        Assert.That(beEnd.Coalesced, Is.EqualTo(4));

        fe.Notify();
        emu.RunUntilIdle();
        Assert.That(beEnd.Deliveries - deliveriesBefore, Is.EqualTo(2), "a notify after delivery is a new event");
    }

    [Test]
    public void Bind_BindsPending_SoNotificationsBeforeBindAreNotLost()
    {
        using var emu = XenEmulator.CreateDeterministic(3);
        var guest = emu.CreateDomain("guest");
        var (port, fe) = guest.EventChannels.AllocUnbound(0);
        fe.Notify(); // nobody bound yet: dropped
        Assert.That(fe.NotificationsDropped, Is.EqualTo(1));
        var be = emu.EventChannelFactoryFor(0).BindInterdomain(guest.Id, port, out _)!;
        int events = 0;
        be.SetHandler(() => events++);
        emu.RunUntilIdle();
        Assert.That(events, Is.EqualTo(1));
    }

    [Test]
    public void Close_EitherEnd_StopsDelivery()
    {
        using var emu = XenEmulator.CreateDeterministic(3);
        var guest = emu.CreateDomain("guest");
        var (fe, be) = Pair(emu, guest);
        int feEvents = 0, beEvents = 0;
        fe.SetHandler(() => feEvents++);
        be.SetHandler(() => beEvents++);
        emu.RunUntilIdle();
        beEvents = 0;

        fe.Notify();   // queued for delivery...
        be.Dispose();  // ...then the receiver closes
        be.Notify();
        fe.Notify();
        emu.RunUntilIdle();

        Assert.That(beEvents, Is.EqualTo(0));
        Assert.That(feEvents, Is.EqualTo(0));
        Assert.That(fe.IsConnected, Is.False);
    }

    [Test]
    public void BindInterdomain_BadRequests_ReturnNullWithReason()
    {
        using var emu = XenEmulator.CreateDeterministic(3);
        var guest = emu.CreateDomain("guest");
        var other = emu.CreateDomain("other");
        var (port, _) = guest.EventChannels.AllocUnbound(0);
        var factory = emu.EventChannelFactoryFor(0);

        Assert.That(factory.BindInterdomain(guest.Id, port + 100, out var e1), Is.Null);
        Assert.That(e1, Does.Contain("no open event channel port"));
        Assert.That(emu.EventChannelFactoryFor(other.Id).BindInterdomain(guest.Id, port, out var e2), Is.Null);
        Assert.That(e2, Does.Contain("offered to domain 0"));
        Assert.That(factory.BindInterdomain(999, port, out var e3), Is.Null);
        Assert.That(e3, Does.Contain("999"));
        Assert.That(factory.BindInterdomain(guest.Id, port, out _), Is.Not.Null);
        Assert.That(factory.BindInterdomain(guest.Id, port, out var e4), Is.Null);
        Assert.That(e4, Does.Contain("already bound"));
    }

    [Test]
    public void DestroyDomain_ClosesItsPorts_PeerGetsNothing()
    {
        using var emu = XenEmulator.CreateDeterministic(3);
        var guest = emu.CreateDomain("guest");
        var (fe, be) = Pair(emu, guest);
        emu.DestroyDomain(guest.Id);
        Assert.That(fe.IsClosed, Is.True);
        be.Notify();
        Assert.That(((EmulatedEventChannel)be).NotificationsDropped, Is.EqualTo(1));
    }

    [Test]
    public void Notify_ThreadedScheduler_RunsHandlerOnTheHypervisorThread()
    {
        using var emu = new XenEmulator();
        var guest = emu.CreateDomain("guest");
        var (fe, be) = Pair(emu, guest);
        int handlerThread = 0;
        int events = 0;
        be.SetHandler(() => { handlerThread = Environment.CurrentManagedThreadId; Interlocked.Increment(ref events); });
        emu.RunUntilIdle();
        fe.Notify();
        emu.RunUntil(() => Volatile.Read(ref events) >= 2);
        Assert.That(handlerThread, Is.Not.EqualTo(Environment.CurrentManagedThreadId));
    }

    /// <summary>
    /// A bound pair on a threaded emulator whose backend end counts its deliveries in <c>counter[0]</c>, after the
    /// binding's own delivery (1) and once the emulator is idle.
    /// </summary>
    private static (EmulatedEventChannel Guest, IEventChannel Backend, int[] Counter) CountedPair(XenEmulator emu)
    {
        var (fe, be) = Pair(emu, emu.CreateDomain("guest"));
        var counter = new int[1];
        be.SetHandler(() => Interlocked.Increment(ref counter[0]));
        emu.RunUntil(() => Volatile.Read(ref counter[0]) == 1); // binding's own event
        emu.RunUntilIdle();
        return (fe, be, counter);
    }

    [Test]
    public void HoldDeliveries_NotificationsWhileHeld_OneDeliveryWhenTheHoldEnds()
    {
        using var emu = new XenEmulator();
        var (fe, be, counter) = CountedPair(emu);
        var beEnd = (EmulatedEventChannel)be;

        // A long hold, ended early by a short one: the handler must not run while held, and must run once after.
        be.HoldDeliveries(TimeSpan.FromHours(1));
        for (int i = 0; i < 1000; i++) fe.Notify();
        emu.RunUntilIdle();
        Assert.That(Volatile.Read(ref counter[0]), Is.EqualTo(1), "delivered while held");
        Assert.That(beEnd.IsHeld, Is.True);
        Assert.That(beEnd.IsPending, Is.True, "the held notifications were forgotten");

        be.HoldDeliveries(TimeSpan.FromMilliseconds(1));
        emu.RunUntil(() => Volatile.Read(ref counter[0]) == 2);
        emu.RunUntilIdle();
        Assert.That(Volatile.Read(ref counter[0]), Is.EqualTo(2), "1000 held notifications are one delivery");
        Assert.That(beEnd.IsHeld, Is.False);
        Assert.That(beEnd.Holds, Is.EqualTo(2));

        fe.Notify();
        emu.RunUntil(() => Volatile.Read(ref counter[0]) == 3); // not held any more
    }

    [Test]
    public void HoldDeliveries_NothingNotifiedWhileHeld_NoDelivery()
    {
        using var emu = new XenEmulator();
        var (_, be, counter) = CountedPair(emu);
        be.HoldDeliveries(TimeSpan.FromMilliseconds(1));
        emu.RunUntil(() => !((EmulatedEventChannel)be).IsHeld);
        emu.RunUntilIdle();
        Assert.That(Volatile.Read(ref counter[0]), Is.EqualTo(1));
    }
}
