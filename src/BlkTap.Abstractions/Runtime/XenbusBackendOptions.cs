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

    /// <summary>
    /// Whether <c>feature-persistent</c> is offered (default true, as Linux blkback's <c>feature_persistent</c>
    /// parameter): with a frontend that writes it too, each ring keeps its data grants mapped.
    /// </summary>
    public bool FeaturePersistent { get; set; } = true;

    /// <summary>
    /// The most grants kept mapped per ring with persistent grants (default 1056, Linux blkback's
    /// <c>max_persistent_grants</c>); beyond it pages are mapped per request. At least 1.
    /// </summary>
    public int MaxPersistentGrants { get; set; } = 1056;

    /// <summary>
    /// The most rings a frontend may connect (<c>multi-queue-max-queues</c>; default the processor count, as Linux
    /// blkback's <c>max_queues</c> defaults to the online CPUs). 1 offers a single ring. 1..256.
    /// </summary>
    public int MaxQueues { get; set; } = Math.Clamp(Environment.ProcessorCount, 1, MaxQueuesLimit);

    /// <summary>The largest <see cref="MaxQueues"/> accepted.</summary>
    public const int MaxQueuesLimit = 256;
}
