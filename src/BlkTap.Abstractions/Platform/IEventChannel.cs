namespace BlkTap;

/// <summary>
/// One end of a bound interdomain event channel: a doorbell with no payload. Repeated notifications
/// before delivery coalesce into one, as Xen's pending bit does.
/// </summary>
/// <remarks>
/// Threading: <see cref="Notify"/> may be called from any thread. The handler runs on a thread the
/// implementation chooses (an evtchn poll thread, the emulator's scheduler); it must not block and
/// normally just wakes the owner's loop.
/// </remarks>
public interface IEventChannel : IDisposable
{
    /// <summary>The local port number (informational).</summary>
    uint LocalPort { get; }

    /// <summary>Signals the remote end.</summary>
    void Notify();

    /// <summary>Sets the callback run when the remote end notifies us; null stops delivery.</summary>
    void SetHandler(Action? onEvent);

    /// <summary>
    /// Asks the channel to hold its deliveries back for <paramref name="delay"/>, as a masked Xen port does: the
    /// notifications that arrive meanwhile coalesce into one delivery when the delay ends. A backend calls it when
    /// the peer keeps notifying for nothing (XSA-332), so that the storm stops at the channel instead of waking the
    /// delivery thread for each notification. Any thread. The default does nothing; callers must not depend on it
    /// for correctness (a channel may deliver earlier), only for cost.
    /// </summary>
    void HoldDeliveries(TimeSpan delay) { }
}
