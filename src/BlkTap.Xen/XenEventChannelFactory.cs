namespace BlkTap.Xen;

/// <summary>
/// Binds interdomain event channels through libxenevtchn (<see cref="XenEventChannel.BindInterdomain"/>), for
/// <see cref="XenbusBlockBackend"/> on a real dom0, and offers unbound ports
/// (<see cref="XenEventChannel.AllocateUnbound"/>) for a frontend.
/// </summary>
/// <remarks>
/// Threading: safe from any thread; holds no state. Failures are returned as null plus a reason, never thrown,
/// so a frontend's bad <c>event-channel</c> closes only its own device.
/// </remarks>
public sealed class XenEventChannelFactory : IEventChannelFactory
{
    /// <inheritdoc />
    public IEventChannel? BindInterdomain(ushort remoteDomain, uint remotePort, out string? error)
    {
        try
        {
            var channel = XenEventChannel.BindInterdomain(remoteDomain, remotePort);
            error = null;
            return channel;
        }
        catch (Exception ex) when (ex is XenInteropException or XenNotAvailableException or ObjectDisposedException or DllNotFoundException or EntryPointNotFoundException)
        {
            error = ex.Message;
            return null;
        }
    }

    /// <inheritdoc />
    public IEventChannel? AllocateUnbound(ushort remoteDomain, out string? error)
    {
        try
        {
            var channel = XenEventChannel.AllocateUnbound(remoteDomain);
            error = null;
            return channel;
        }
        catch (Exception ex) when (ex is XenInteropException or XenNotAvailableException or ObjectDisposedException or DllNotFoundException or EntryPointNotFoundException)
        {
            error = ex.Message;
            return null;
        }
    }
}
