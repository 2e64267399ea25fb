namespace BlkTap;

/// <summary>Settings of a <see cref="XenbusBlockBackend"/>.</summary>
public sealed class XenbusBackendOptions
{
    /// <summary>The backend's own domain id (0 for dom0).</summary>
    public ushort BackendDomain { get; set; }

    /// <summary>The device type directory under <c>backend/</c>: "vbd" (blkback's) or "vbd3"/"tap" for a tap-only toolstack.</summary>
    public string DeviceType { get; set; } = "vbd";

    /// <summary>The largest ring-page-order offered (max-ring-page-order), 0..3.</summary>
    public int MaxRingPageOrder { get; set; } = BlkifConstants.MaxRingPageOrder;
}
