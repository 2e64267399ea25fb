namespace BlkTap.Emulator;

/// <summary>Options of a <see cref="BlkFront"/>. A plain bag of settings, read once by the constructor.</summary>
public sealed class BlkFrontOptions
{
    /// <summary>The ring ABI the frontend speaks and writes to <c>protocol</c> (default x86_64-abi).</summary>
    public BlkifProtocol Protocol { get; set; } = BlkifProtocol.X86_64;

    /// <summary>
    /// The largest ring-page-order the frontend wants (0..3, default 3). The ring uses
    /// min(this, backend's <c>max-ring-page-order</c>), and one page when the backend offers none.
    /// </summary>
    public int MaxRingPageOrder { get; set; } = BlkifConstants.MaxRingPageOrder;

    /// <summary>
    /// Sector (0..7) within the first data page of each request where the data starts, so segments with
    /// first_sect ≠ 0 are exercised. Ignored when <see cref="RandomFirstSector"/> is set.
    /// </summary>
    public int FirstSectorOffset { get; set; }

    /// <summary>Picks the first segment's start sector at random (from <see cref="Seed"/>) for every request.</summary>
    public bool RandomFirstSector { get; set; }

    /// <summary>Segments per ring request, 1..11 (default 11): lower values split transfers into more requests.</summary>
    public int MaxSegmentsPerRequest { get; set; } = BlkifConstants.MaxSegmentsPerRequest;

    /// <summary>Seed of the frontend's own random choices (sub-page placement).</summary>
    public int Seed { get; set; }

    /// <summary>
    /// Whether the frontend writes <c>feature-persistent</c>=1 (default true, as Linux blkfront's
    /// <c>feature_persistent</c> parameter): when the backend offers it too, data pages come from a pool of pages
    /// granted once (read-write) and reused, so the backend can keep them mapped.
    /// </summary>
    public bool PersistentGrants { get; set; } = true;

    /// <summary>
    /// The most rings (queues) the frontend asks for, 1..256: it uses min(this, the backend's
    /// <c>multi-queue-max-queues</c>), one ring when the backend offers none. Requests are spread over the rings in
    /// turn, so the tap no longer sees one guest's requests in the order they were issued. Default 1 (one ring, the
    /// order kept: replay captures compare request sequences); Linux blkfront's <c>max_queues</c> parameter asks for
    /// min(4, CPUs), which <see cref="LinuxDefaultQueues"/> gives.
    /// </summary>
    public int MaxQueues { get; set; } = 1;

    /// <summary>What Linux xen-blkfront asks for by default: min(4, processor count) rings.</summary>
    public static int LinuxDefaultQueues => Math.Min(4, Environment.ProcessorCount);
}
