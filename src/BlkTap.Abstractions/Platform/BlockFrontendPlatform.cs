namespace BlkTap;

/// <summary>
/// What a block frontend needs of the domain it runs in: xenstore, event channels it can offer, and
/// pages it can grant. On a real dom0 it is built by <c>BlkTap.Xen.XenFrontendPlatform</c>; in the
/// emulator by <c>EmulatedDomain.FrontendPlatform</c>.
/// </summary>
/// <remarks>Immutable; the members are thread-safe as their contracts say.</remarks>
/// <param name="DomainId">The id of the domain the frontend runs in (0 in dom0).</param>
/// <param name="Store">Xenstore as that domain sees it.</param>
/// <param name="EventChannels">Allocates the unbound port the backend binds to.</param>
/// <param name="Grants">Grants the ring and data pages to the backend's domain.</param>
public sealed record BlockFrontendPlatform(ushort DomainId, IXenStore Store, IEventChannelFactory EventChannels, IGrantIssuer Grants);
