namespace BlkTap;

/// <summary>Opens event channels on behalf of one domain (evtchn on Xen, the emulator's tables).</summary>
/// <remarks>Threading: safe to call from any thread.</remarks>
public interface IEventChannelFactory
{
    /// <summary>
    /// Binds a local port to <paramref name="remotePort"/> of <paramref name="remoteDomain"/>, which
    /// that domain allocated as unbound for us (xenstore <c>event-channel</c>). Returns null with a
    /// reason when the port does not exist, is not offered to us, or is already bound.
    /// </summary>
    IEventChannel? BindInterdomain(ushort remoteDomain, uint remotePort, out string? error);

    /// <summary>
    /// Allocates a local port offered to <paramref name="remoteDomain"/> (EVTCHNOP_alloc_unbound), for a
    /// frontend to write to xenstore as <c>event-channel</c>; the returned channel delivers the remote's
    /// notifications once it has bound. Returns null with a reason when that fails. Platforms that
    /// cannot offer ports (the default) say so.
    /// </summary>
    IEventChannel? AllocateUnbound(ushort remoteDomain, out string? error)
    {
        error = $"{GetType().Name} cannot offer event channels (no frontend support on this platform)";
        return null;
    }
}
