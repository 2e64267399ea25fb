namespace BlkTap.Xen;

/// <summary>
/// One frontend domain's block interface through the 2005 <c>/dev/blktap</c> device: created by a
/// CMSG_BLKIF_BE_CREATE copy on the control ring, connected by CONNECT, closed by DISCONNECT or DESTROY or when the
/// domain breaks the blkif protocol. Every domain's requests share the device's rings; the session routes its own.
/// </summary>
/// <remarks>
/// <para>Threading: loop thread only (see <see cref="TapSession"/>).</para>
/// <para>NOTE: blktap_datapath.c MAKE_ID puts only the domain id in the ids the tap sees, not the blkif handle,
/// so the device serves one interface per domain (the first CREATE) and one virtual disk (the first VBD_CREATE).</para>
/// </remarks>
public sealed class BlktapDomainSession : TapSession
{
    internal BlktapDomainSession(BlktapDevice2005 device, ushort domainId, uint blkifHandle)
        : base($"blktap/dom{domainId}", domainId, null)
    {
        Device = device;
        BlkifHandle = blkifHandle;
    }

    /// <summary>The device this session's requests arrive on.</summary>
    public BlktapDevice2005 Device { get; }

    /// <summary>The blkif handle of the CREATE message.</summary>
    public uint BlkifHandle { get; }

    /// <summary>The vdevice of the interface's first VBD_CREATE, or null before one arrived.</summary>
    public ushort? VirtualDevice { get; internal set; }

    internal bool Connected { get; set; }

    /// <inheritdoc/>
    protected override void Process() => Device.Pump();

    /// <inheritdoc/>
    protected override void Complete(TapRequest request) => Device.CompleteOnFrontendRing(request);

    /// <inheritdoc/>
    protected override void FlushCompletions() => Device.FlushRings();
}
