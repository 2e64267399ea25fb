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
}
