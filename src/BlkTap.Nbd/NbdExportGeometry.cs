namespace BlkTap.Nbd;

/// <summary>What a chain's terminator made of a disk at attach, as an NBD export shows it. Immutable; thread-safe.</summary>
/// <param name="Size">Export size in bytes (the session's sectors × 512); 0 when the terminator could not open its disk.</param>
/// <param name="ReadOnly">Whether the export refuses writes (the session is read-only, or the export was asked to be).</param>
/// <param name="SupportsFlush">Whether the chain offers FLUSH.</param>
/// <param name="SupportsDiscard">Whether the chain offers DISCARD (NBD TRIM).</param>
public sealed record NbdExportGeometry(ulong Size, bool ReadOnly, bool SupportsFlush, bool SupportsDiscard);
