namespace BlkTap.Emulator;

/// <summary>One request for a <see cref="ReplayDriver"/> to issue. An immutable value.</summary>
/// <param name="Frontend">Index of the rig's frontend (guest domain) that issues it.</param>
/// <param name="Operation">Read, Write, WriteBarrier, FlushDiskCache (with or without data) or Discard.</param>
/// <param name="Sector">First 512-byte sector.</param>
/// <param name="Length">Bytes; a multiple of 512 for data operations (0: a flush without data, or nothing to do).</param>
/// <param name="SubmitNs">When to issue it, ns after the replay started (before <see cref="ReplayDriverOptions.TimeScale"/>).</param>
/// <param name="ExpectedStatus">The status the original run saw; a request that answers ERROR where this is OKAY is a failure.</param>
public readonly record struct ReplayRequest(int Frontend, BlkifOperation Operation, ulong Sector, uint Length, ulong SubmitNs,
    BlkifStatus ExpectedStatus = BlkifStatus.Okay)
{
    /// <summary>Sectors covered (data length or discard length, rounded up).</summary>
    public ulong SectorCount => ((ulong)Length + 511) / 512;
    /// <summary>True for operations that change the disk's content (writes, barriers, flushes with data, discards).</summary>
    public bool Modifies => Operation is BlkifOperation.Write or BlkifOperation.WriteBarrier or BlkifOperation.Discard
        || (Operation == BlkifOperation.FlushDiskCache && Length > 0);
    /// <summary>True for operations that carry data to the disk (writes, barriers, flushes with data).</summary>
    public bool WritesData => Modifies && Operation != BlkifOperation.Discard && Length > 0;
}

/// <summary>What became of one replayed request.</summary>
/// <param name="Index">Position of the request in the replayed sequence (0-based).</param>
/// <param name="Request">The request.</param>
/// <param name="Status">The status the frontend received (for a barrier or a flush with data: the write's, then the flush's).</param>
/// <param name="Skipped">True when the request was not sent because the disk does not offer it (a discard without feature-discard, a flush without feature-flush-cache) or it moves no data.</param>
/// <param name="WriteSequence">For requests that wrote data: the write sequence number its data was filled with (1, 2, ...); else 0.</param>
/// <param name="LatencyTicks">Stopwatch ticks from issue to completion.</param>
public readonly record struct ReplayCompletion(long Index, ReplayRequest Request, BlkifStatus Status, bool Skipped, ulong WriteSequence, long LatencyTicks);
