namespace BlkTap;

/// <summary>Options of a <see cref="XenbusBlockFrontend"/>.</summary>
/// <remarks>Immutable once built.</remarks>
public sealed class XenbusFrontendOptions
{
    /// <summary>
    /// The largest ring the frontend asks for, as a page order (the backend's
    /// <c>max-ring-page-order</c> caps it; absent means one page). Default 2 (four pages).
    /// </summary>
    public int MaxRingPageOrder { get; init; } = 2;

    /// <summary>
    /// Most ring requests in flight at once (default 32). Each owns 11 granted bounce pages, so this
    /// bounds the grants the frontend holds (gntalloc's default limit is 1024 grants per dom0).
    /// </summary>
    public int Depth { get; init; } = 32;

    /// <summary>The ring ABI the frontend writes (default x86_64).</summary>
    public BlkifProtocol Protocol { get; init; } = BlkifProtocol.X86_64;
}
