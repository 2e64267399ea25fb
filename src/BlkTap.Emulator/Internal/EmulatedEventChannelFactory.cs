namespace BlkTap.Emulator.Internal;

/// <summary>EVTCHNOP_bind_interdomain on behalf of one domain.</summary>
/// <remarks>Threading: safe from any thread.</remarks>
internal sealed class EmulatedEventChannelFactory : IEventChannelFactory
{
    private readonly XenEmulator _emulator;
    private readonly ushort _domid;
    private readonly object _gate;

    public EmulatedEventChannelFactory(XenEmulator emulator, ushort domid, object gate)
    {
        _emulator = emulator;
        _domid = domid;
        _gate = gate;
    }

    public IEventChannel? BindInterdomain(ushort remoteDomain, uint remotePort, out string? error)
    {
        if (!_emulator.TryGetDomain(_domid, out var local) || !local.IsAlive)
        {
            error = $"domain {_domid} (the binder) is dead";
            return null;
        }
        if (!_emulator.TryGetDomain(remoteDomain, out var remote) || !remote.IsAlive)
        {
            error = $"domain {remoteDomain} does not exist";
            return null;
        }
        lock (_gate)
        {
            var port = remote.EventChannels.FindLocked(remotePort);
            if (port == null)
            {
                error = $"domain {remoteDomain} has no open event channel port {remotePort}";
                return null;
            }
            if (port.RemoteDomain != _domid)
            {
                error = $"port {remotePort} of domain {remoteDomain} is offered to domain {port.RemoteDomain}, not {_domid}";
                return null;
            }
            if (port.IsConnectedLocked)
            {
                error = $"port {remotePort} of domain {remoteDomain} is already bound";
                return null;
            }
            error = null;
            return local.EventChannels.BindLocked(port);
        }
    }

    public IEventChannel? AllocateUnbound(ushort remoteDomain, out string? error)
    {
        if (!_emulator.TryGetDomain(_domid, out var local) || !local.IsAlive)
        {
            error = $"domain {_domid} (the allocator) is dead";
            return null;
        }
        try
        {
            var (_, channel) = local.EventChannels.AllocUnbound(remoteDomain);
            error = null;
            return channel;
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException)
        {
            error = e.Message;
            return null;
        }
    }
}
