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
    /// Most ring requests in flight at once (default 32). Each owns its granted bounce pages (11, or the
    /// indirect segment count plus a descriptor page), so <see cref="GrantBudget"/> may lower it.
    /// </summary>
    public int Depth { get; init; } = 32;

    /// <summary>
    /// Most segments the frontend puts in one indirect request when the backend offers
    /// <c>feature-max-indirect-segments</c> (default 32, at most 256; 11 or less: never send indirect requests).
    /// </summary>
    public int MaxIndirectSegments { get; init; } = 32;

    /// <summary>
    /// Most pages the frontend grants for data (bounce and indirect-descriptor pages); <see cref="Depth"/> is lowered
    /// to fit. Default 768, under gntalloc's default limit of 1024 grants with room for a second frontend's ring.
    /// </summary>
    public int GrantBudget { get; init; } = 768;

    /// <summary>The ring ABI the frontend writes (default x86_64).</summary>
    public BlkifProtocol Protocol { get; init; } = BlkifProtocol.X86_64;
}
