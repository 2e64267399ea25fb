namespace BlkTap.Nbd;

/// <summary>What the handshake learned about an export. Immutable; thread-safe.</summary>
/// <param name="ExportName">The export name asked for.</param>
/// <param name="Size">Export size in bytes.</param>
/// <param name="Flags">Transmission flags.</param>
/// <param name="UsedGo">True when NBD_OPT_GO was used; false after the NBD_OPT_EXPORT_NAME fallback.</param>
/// <param name="MinimumBlockSize">NBD_INFO_BLOCK_SIZE minimum, or 1 when the server did not say.</param>
/// <param name="PreferredBlockSize">NBD_INFO_BLOCK_SIZE preferred, or 4096 when the server did not say.</param>
/// <param name="MaximumBlockSize">NBD_INFO_BLOCK_SIZE maximum, or 32 MiB when the server did not say.</param>
public sealed record NbdExportInfo(string ExportName, ulong Size, NbdTransmissionFlags Flags, bool UsedGo,
    uint MinimumBlockSize = 1, uint PreferredBlockSize = 4096, uint MaximumBlockSize = NbdMagic.MaxPayload);
