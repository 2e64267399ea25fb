namespace BlkTap.Emulator;

/// <summary>
/// One end of an emulated event channel. <see cref="Notify"/> sets the peer's pending bit; if it was
/// clear, a delivery is posted to the emulator's scheduler, which clears the bit and runs the peer's
/// handler. Notifications made while the bit is set coalesce into that one delivery.
/// </summary>
/// <remarks>
/// Threading: every member is safe to call from any thread. Handlers never run on the notifier's
/// stack: always on the emulator's scheduler. <see cref="HoldDeliveries"/> masks the port for a while. A port with no handler keeps its pending bit until a
/// handler is set, which then gets one delivery. Notifying from a closed or unbound port does nothing
/// (Xen's EVTCHNOP_send on an unbound port is a silent no-op).
/// </remarks>
public sealed class EmulatedEventChannel : IEventChannel
{
    private readonly XenEmulator _emulator;
    private readonly object _gate;
    private readonly Action _deliver;
    private EmulatedEventChannel? _peer;
    private Action? _handler;
    private bool _pending;
    private bool _scheduled;
    private bool _closed;
    private bool _everBound;
    private bool _held;
    private ITimer? _holdTimer;
    private long _notifies, _deliveries, _coalesced, _dropped, _holds;

    internal EmulatedEventChannel(EmulatedDomain domain, uint port, ushort remoteDomain, XenEmulator emulator, object gate)
    {
        Domain = domain;
        LocalPort = port;
        RemoteDomain = remoteDomain;
        _emulator = emulator;
        _gate = gate;
        _deliver = Deliver;
    }

    /// <summary>The domain owning this end.</summary>
    public EmulatedDomain Domain { get; }

    /// <inheritdoc/>
    public uint LocalPort { get; }

    /// <summary>The domain allowed to bind (unbound port) or bound (interdomain port).</summary>
    public ushort RemoteDomain { get; }

    /// <summary>The peer's port, or 0 while unbound or after the peer closed.</summary>
    public uint RemotePort
    {
        get { lock (_gate) return _peer?.LocalPort ?? 0; }
    }

    /// <summary>True once a peer has bound and neither end has closed.</summary>
    public bool IsConnected
    {
        get { lock (_gate) return _peer != null && !_closed; }
    }

    /// <summary>True after <see cref="Dispose"/> (or the owner's death).</summary>
    public bool IsClosed
    {
        get { lock (_gate) return _closed; }
    }

    /// <summary>True while a notification for this end is pending (set, not yet delivered).</summary>
    public bool IsPending
    {
        get { lock (_gate) return _pending; }
    }

    /// <summary>Calls of <see cref="Notify"/> on this end (including dropped ones).</summary>
    public long NotificationsSent => Interlocked.Read(ref _notifies);

    /// <summary>Calls of <see cref="Notify"/> on this end that reached no one (unbound, closed, or peer closed).</summary>
    public long NotificationsDropped => Interlocked.Read(ref _dropped);

    /// <summary>Times this end's handler ran.</summary>
    public long Deliveries => Interlocked.Read(ref _deliveries);

    /// <summary>Notifications to this end that found the pending bit already set and merged into it.</summary>
    public long Coalesced => Interlocked.Read(ref _coalesced);

    /// <summary>Times this end's owner asked it to hold deliveries back (<see cref="HoldDeliveries"/>).</summary>
    public long Holds => Interlocked.Read(ref _holds);

    /// <summary>True while deliveries to this end are held back (the port is "masked").</summary>
    public bool IsHeld
    {
        get { lock (_gate) return _held; }
    }

    /// <inheritdoc/>
    public void Notify()
    {
        Interlocked.Increment(ref _notifies);
        lock (_gate)
        {
            if (_closed || _peer == null || _peer._closed)
            {
                Interlocked.Increment(ref _dropped);
                return;
            }
            _peer.SignalLocked();
        }
    }

    /// <inheritdoc/>
    public void SetHandler(Action? onEvent)
    {
        lock (_gate)
        {
            if (_closed) return;
            _handler = onEvent;
            if (onEvent != null && _pending && !_scheduled && !_held)
            {
                _scheduled = true;
                _emulator.Scheduler.Post(_deliver);
            }
        }
    }

    /// <inheritdoc/>
    /// <remarks>
    /// As a masked port: notifications meanwhile set the pending bit and post nothing; when the delay ends (a timer on
    /// the system clock) a pending bit gets one delivery. A delivery already posted still runs.
    /// </remarks>
    public void HoldDeliveries(TimeSpan delay)
    {
        if (delay <= TimeSpan.Zero) return;
        lock (_gate)
        {
            if (_closed) return;
            _held = true;
            Interlocked.Increment(ref _holds);
            _holdTimer ??= TimeProvider.System.CreateTimer(static s => ((EmulatedEventChannel)s!).EndHold(), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
            _holdTimer.Change(delay, Timeout.InfiniteTimeSpan);
        }
    }

    private void EndHold()
    {
        lock (_gate)
        {
            _held = false;
            if (_closed || !_pending || _handler == null || _scheduled) return;
            _scheduled = true;
            _emulator.Scheduler.Post(_deliver);
        }
    }

    /// <summary>Closes this end (EVTCHNOP_close): no more deliveries here, notifications from the peer are dropped.</summary>
    public void Dispose()
    {
        lock (_gate) CloseLocked();
    }

    internal void LinkLocked(EmulatedEventChannel peer)
    {
        _peer = peer;
        _everBound = true;
    }

    /// <summary>Whether a peer was ever bound (a port binds once). Gate held.</summary>
    internal bool IsConnectedLocked => _peer != null || _everBound;

    /// <summary>Sets this end pending; posts a delivery if the bit was clear and a handler is set. Gate held.</summary>
    internal void SignalLocked()
    {
        if (_closed) return;
        if (_pending)
        {
            Interlocked.Increment(ref _coalesced);
            return;
        }
        _pending = true;
        if (_handler != null && !_scheduled && !_held)
        {
            _scheduled = true;
            _emulator.Scheduler.Post(_deliver);
        }
    }

    internal void CloseLocked()
    {
        if (_closed) return;
        _closed = true;
        _handler = null;
        _pending = false;
        _held = false;
        _holdTimer?.Dispose();
        _holdTimer = null;
        if (_peer != null && _peer._peer == this) _peer._peer = null;
        _peer = null;
        Domain.EventChannels.RemoveLocked(this);
    }

    private void Deliver()
    {
        Action? handler;
        lock (_gate)
        {
            _scheduled = false;
            if (_closed || _handler == null || !_pending) return;
            _pending = false;
            handler = _handler;
        }
        Interlocked.Increment(ref _deliveries);
        handler();
    }

    /// <inheritdoc/>
    public override string ToString() => $"event channel {Domain.Id}:{LocalPort} -> {RemoteDomain}";
}
