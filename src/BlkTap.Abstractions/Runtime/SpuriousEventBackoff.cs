namespace BlkTap;

/// <summary>
/// The event channel side of one ring: passes the frontend's notifications on to the session's
/// <see cref="TapSession.Signal"/>, and holds them back for a while when they keep finding nothing to do (a guest
/// notifying for nothing, as fast as it can).
/// </summary>
/// <remarks>
/// <para>
/// NOTE: XSA-332 ("event storms"): Linux's fix makes its backends end each event late (lateeoi) and say whether the
/// event found work; after consecutive spurious events the event channel stays masked for a delay that doubles with
/// each further one, up to a second, and any event that found work ends the backoff (drivers/xen/events/
/// events_base.c, xen_irq_lateeoi_locked; xen-blkback reports XEN_EOI_FLAG_SPURIOUS when it consumed no request).
/// This is the same policy for a user-space backend: a held-back notification is remembered, not lost, and the ring
/// is looked at when the delay ends. The channel is asked to hold its deliveries back for the same delay
/// (<see cref="IEventChannel.HoldDeliveries"/>: on Xen the port then stays masked, so the storm does not even reach
/// dom0's kernel).
/// </para>
/// <para>
/// An event counts as spurious when nothing was taken off the ring since the previous event was handled, whatever
/// woke the session in between: with several queues one wake-up serves every ring, so the notification of a ring
/// whose requests an earlier pass already took is not the guest's fault. The first deferral comes at the
/// <see cref="FirstDeferral"/>th spurious event in a row (Linux: the second), because an emulated or evtchn
/// delivery may run late enough for an honest guest's notification to find its requests taken twice in a row.
/// </para>
/// <para>
/// Threading: <see cref="OnEvent"/> runs on the channel's delivery thread; the timer's callback on a thread pool
/// thread; <see cref="Handled"/>, <see cref="Took"/> and the counters on the loop thread. The handshake between the
/// first two is a pair of full fences: an event that arrives while the delay ends is seen by one of them.
/// </para>
/// </remarks>
internal sealed class SpuriousEventBackoff : IDisposable
{
    /// <summary>The spurious event, counted in a row, that first holds events back.</summary>
    public const int FirstDeferral = 3;

    /// <summary>The longest delay: one second, as Linux's cap of HZ jiffies.</summary>
    public static readonly TimeSpan MaxDelay = TimeSpan.FromSeconds(1);

    private static readonly TimeSpan FirstDelay = TimeSpan.FromMilliseconds(1);

    private readonly Action _signal;
    private readonly IEventChannel? _channel;
    private readonly TimeProvider _time;
    private ITimer? _timer;
    private int _event;    // a notification arrived and was not yet handled
    private int _deferred; // notifications are held back until the timer fires
    private int _spurious; // spurious events in a row (loop thread)
    private bool _took;    // requests were taken off the ring since the last handled event (loop thread)
    private int _disposed;

    /// <summary>
    /// Creates the backoff of one ring, which signals through <paramref name="signal"/> and asks
    /// <paramref name="channel"/> (if any) to hold its deliveries back for each delay too.
    /// </summary>
    public SpuriousEventBackoff(Action signal, IEventChannel? channel, TimeProvider time)
    {
        _signal = signal;
        _channel = channel;
        _time = time;
    }

    /// <summary>Times events were held back (each a deferral of a doubling delay). Loop thread.</summary>
    public long Deferrals { get; private set; }

    /// <summary>Spurious events in a row now. Loop thread.</summary>
    public int SpuriousInARow => _spurious;

    /// <summary>True while the ring's notifications are held back.</summary>
    public bool Deferred => Volatile.Read(ref _deferred) != 0;

    /// <summary>The channel's handler: remembers the event and signals the session unless a delay holds it back.</summary>
    public void OnEvent()
    {
        Interlocked.Exchange(ref _event, 1);
        if (Volatile.Read(ref _deferred) != 0) return; // the timer looks at _event when the delay ends
        _signal();
    }

    /// <summary>Loop thread: requests were taken off this ring.</summary>
    public void Took() => _took = true;

    /// <summary>
    /// Loop thread, at the start of a wake-up: takes the pending event, if any (true: a notification woke or
    /// joined this wake-up and is judged by <see cref="Handled"/>).
    /// </summary>
    public bool TakeEvent() => Interlocked.Exchange(ref _event, 0) != 0;

    /// <summary>
    /// Loop thread, after the ring was looked at for an event taken by <see cref="TakeEvent"/>: an event that found
    /// work (since the previous one) ends the backoff; a spurious one may start or lengthen a delay.
    /// </summary>
    public void Handled()
    {
        if (_took)
        {
            _took = false;
            _spurious = 0;
            return;
        }
        if (_spurious < 16) _spurious++;
        if (_spurious < FirstDeferral) return;
        var delay = FirstDelay * (1L << Math.Min(_spurious - FirstDeferral, 10));
        if (delay > MaxDelay) delay = MaxDelay;
        if (Volatile.Read(ref _disposed) != 0) return;
        Volatile.Write(ref _deferred, 1);
        Deferrals++;
        _timer ??= _time.CreateTimer(static s => ((SpuriousEventBackoff)s!).DelayEnded(), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        _timer.Change(delay, Timeout.InfiniteTimeSpan);
        // The channel stops the storm before its delivery thread (a masked port on Xen); this object's own flag
        // covers a channel that cannot, and a delivery already on its way.
        _channel?.HoldDeliveries(delay);
    }

    private void DelayEnded()
    {
        Interlocked.Exchange(ref _deferred, 0);
        if (Volatile.Read(ref _event) != 0 && Volatile.Read(ref _disposed) == 0) _signal();
    }

    /// <summary>Stops the timer; held-back events are dropped (the ring is going away).</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        _timer?.Dispose();
    }
}
