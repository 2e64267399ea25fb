namespace BlkTap.Xen;

/// <summary>
/// One frontend domain's traffic through the 2005 <c>/dev/blktap</c> device: created by an Attach control
/// message, closed by Disconnect or when the domain breaks the device protocol. Requests and responses of every
/// domain share the device's fe and be rings; the session only routes its own.
/// </summary>
/// <remarks>Threading: loop thread only (see <see cref="TapSession"/>).</remarks>
public sealed class BlktapDomainSession : TapSession
{
    internal BlktapDomainSession(BlktapDevice2005 device, ushort domainId, string? imageId)
        : base($"blktap/dom{domainId}", domainId, imageId) => Device = device;

    /// <summary>The device this session's requests arrive on.</summary>
    public BlktapDevice2005 Device { get; }

    /// <inheritdoc/>
    protected internal override void Process() => Device.Pump();

    /// <inheritdoc/>
    protected internal override void Complete(TapRequest request) => Device.CompleteOnFrontendRing(request);

    /// <inheritdoc/>
    protected internal override void FlushCompletions() => Device.FlushRings();
}
