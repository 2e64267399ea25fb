namespace BlkTap.Emulator;

/// <summary>A domain's event channel ports.</summary>
/// <remarks>
/// Threading: every member is safe to call from any thread (one lock per emulator guards all event
/// channel state). NOTE: port 0 is never allocated: xen/common/event_channel.c reserves it
/// (ECS_RESERVED) so 0 can mean "no port".
/// </remarks>
public sealed class EventChannelTable
{
    private readonly EmulatedDomain _domain;
    private readonly XenEmulator _emulator;
    private readonly object _gate;
    private readonly Dictionary<uint, EmulatedEventChannel> _ports = new();
    private uint _nextPort = 1;

    internal EventChannelTable(EmulatedDomain domain, XenEmulator emulator, object gate)
    {
        _domain = domain;
        _emulator = emulator;
        _gate = gate;
    }

    /// <summary>
    /// EVTCHNOP_alloc_unbound: allocates a port that <paramref name="remoteDomain"/> may bind to (it
    /// learns the port number through xenstore). Notifications sent before the peer binds are dropped,
    /// but binding sets the binder's port pending, so none is lost.
    /// </summary>
    /// <exception cref="ArgumentException"><paramref name="remoteDomain"/> does not exist.</exception>
    /// <exception cref="InvalidOperationException">This domain is dead.</exception>
    public (uint Port, EmulatedEventChannel Channel) AllocUnbound(ushort remoteDomain)
    {
        if (!_emulator.TryGetDomain(remoteDomain, out _))
            throw new ArgumentException($"domain {remoteDomain} does not exist", nameof(remoteDomain));
        lock (_gate)
        {
            if (!_domain.IsAlive) throw new InvalidOperationException($"domain {_domain.Id} is dead; it cannot allocate event channels");
            var channel = new EmulatedEventChannel(_domain, _nextPort++, remoteDomain, _emulator, _gate);
            _ports.Add(channel.LocalPort, channel);
            return (channel.LocalPort, channel);
        }
    }

    /// <summary>Number of open ports.</summary>
    public int Count
    {
        get { lock (_gate) return _ports.Count; }
    }

    /// <summary>The open port <paramref name="port"/>, or null.</summary>
    public EmulatedEventChannel? Find(uint port)
    {
        lock (_gate) return _ports.GetValueOrDefault(port);
    }

    internal EmulatedEventChannel? FindLocked(uint port) => _ports.GetValueOrDefault(port);

    /// <summary>Binds a new local port of this domain to <paramref name="remote"/>. Event gate held.</summary>
    internal EmulatedEventChannel BindLocked(EmulatedEventChannel remote)
    {
        var local = new EmulatedEventChannel(_domain, _nextPort++, remote.Domain.Id, _emulator, _gate);
        _ports.Add(local.LocalPort, local);
        local.LinkLocked(remote);
        remote.LinkLocked(local);
        // NOTE: xen/common/event_channel.c evtchn_bind_interdomain() "conservatively" sets the new
        // local port pending, because notifications sent to the unbound port may have been lost.
        local.SignalLocked();
        return local;
    }

    internal void RemoveLocked(EmulatedEventChannel channel) => _ports.Remove(channel.LocalPort);

    /// <summary>Closes every port (domain death). Event gate held.</summary>
    internal void CloseAllLocked()
    {
        foreach (var channel in _ports.Values.ToArray()) channel.CloseLocked();
        _ports.Clear();
    }
}
