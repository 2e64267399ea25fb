namespace BlkTap.Trace;

/// <summary>The header of a native trace file. Immutable.</summary>
/// <param name="Version">Format version (1).</param>
/// <param name="Flags">Header flags (bit 0: records may carry data hashes).</param>
/// <param name="RecordSize">Size of one record in bytes (48 in version 1).</param>
/// <param name="CreatedUtc">When the capture started.</param>
/// <param name="Description">Free-form text given by the writer (the command line, the chain, a host name...).</param>
public sealed record TraceHeader(int Version, int Flags, int RecordSize, DateTimeOffset CreatedUtc, string Description);
