namespace BlkTap.Xen;

/// <summary>Settings of a <see cref="XenDom0Backend"/>.</summary>
public sealed class XenDom0BackendOptions
{
    /// <summary>The domain the backend runs in (<c>--backend-domid</c>): 0 for dom0, or a driver domain.</summary>
    public ushort BackendDomain { get; set; }

    /// <summary>
    /// The xenstore device type served, <c>backend/&lt;type&gt;</c>: "vbd3" by default (the toolstack's type for a
    /// user-space block backend, which the kernel's xen-blkback ignores), or "vbd" to replace blkback.
    /// </summary>
    public string DeviceType { get; set; } = "vbd3";

    /// <summary>The largest ring-page-order offered to frontends (0..3).</summary>
    public int MaxRingPageOrder { get; set; } = BlkifConstants.MaxRingPageOrder;
}
