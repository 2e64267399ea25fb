namespace BlkTap.Trace;

/// <summary>What became of one replayed request, as <see cref="ReplayStatistics.Record"/> counts it. An immutable value.</summary>
/// <param name="Index">Position of the request in the replayed sequence (0-based).</param>
/// <param name="Frontend">Index of the frontend (guest domain) that issued it.</param>
/// <param name="Operation">Read, Write, WriteBarrier, FlushDiskCache or Discard.</param>
/// <param name="Sector">First 512-byte sector.</param>
/// <param name="Length">Bytes (a discard's length; 0 for a flush without data).</param>
/// <param name="ExpectedStatus">The status the traced run saw: a request that fails where this is OKAY is an error.</param>
/// <param name="Status">The status the replay received.</param>
/// <param name="Skipped">True when the request was not sent (the disk does not offer it, or it moves no data).</param>
/// <param name="WriteSequence">For a request that wrote data: the write sequence its data was filled with (<see cref="ReplayData.Fill"/>); else 0.</param>
/// <param name="LatencyNs">Nanoseconds from issue to completion.</param>
public readonly record struct ReplayOutcome(long Index, int Frontend, BlkifOperation Operation, ulong Sector, uint Length,
    BlkifStatus ExpectedStatus, BlkifStatus Status, bool Skipped, ulong WriteSequence, long LatencyNs)
{
    /// <summary>Sectors covered (the length rounded up to 512 bytes).</summary>
    public ulong SectorCount => ((ulong)Length + 511) / 512;
}
