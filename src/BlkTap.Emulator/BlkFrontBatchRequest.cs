namespace BlkTap.Emulator;

/// <summary>What a <see cref="BlkFrontBatchRequest"/> asks for.</summary>
public enum BlkFrontBatchOperation : byte
{
    /// <summary>Read <see cref="BlkFrontBatchRequest.Buffer"/>'s length from the sector into the buffer.</summary>
    Read,
    /// <summary>Write the buffer at the sector.</summary>
    Write,
    /// <summary>BLKIF_OP_FLUSH_DISKCACHE.</summary>
    Flush,
    /// <summary>BLKIF_OP_DISCARD of <see cref="BlkFrontBatchRequest.SectorCount"/> sectors.</summary>
    Discard,
    /// <summary>
    /// Read <see cref="BlkFrontBatchRequest.SectorCount"/> sectors from the sector and copy nothing out: the backend fills
    /// the granted pages as for <see cref="Read"/>, the caller gets only the status. For a caller that makes reads happen
    /// without looking at their data (a replay that does not verify), it saves the copy out of the pages.
    /// </summary>
    ReadUncopied,
}

/// <summary>
/// One request of <see cref="BlkFront.SubmitBatch"/>: the value form of <see cref="BlkFront.ReadAsync"/>,
/// <see cref="BlkFront.WriteAsync"/>, <see cref="BlkFront.FlushAsync"/> and <see cref="BlkFront.DiscardAsync"/>,
/// with a caller's token in place of a task.
/// </summary>
/// <param name="Operation">What to do.</param>
/// <param name="Sector">First 512-byte sector (reads, writes, discards).</param>
/// <param name="Buffer">Reads: where the data goes; writes: the data. A multiple of 512 bytes; it must stay valid (and, for
/// a write, unchanged) until the request completes. Empty for flushes and discards.</param>
/// <param name="SectorCount">Discards and uncopied reads: how many sectors (the buffer is empty).</param>
/// <param name="Token">Handed back to <see cref="IBlkFrontBatchCompletion.OnCompleted"/> (the caller's slot or index).</param>
public readonly record struct BlkFrontBatchRequest(BlkFrontBatchOperation Operation, ulong Sector, Memory<byte> Buffer, ulong SectorCount, long Token);

/// <summary>Receives the completions of <see cref="BlkFront.SubmitBatch"/>.</summary>
/// <remarks>
/// Threading: called on the emulator's scheduler, never concurrently for one frontend (all frontends of one emulator
/// share the scheduler, so never concurrently at all). Keep it short and never block: the frontend's event handler is
/// running. It may call <see cref="BlkFront.SubmitBatch"/> again.
/// </remarks>
public interface IBlkFrontBatchCompletion
{
    /// <summary>
    /// The request with <paramref name="token"/> completed with <paramref name="status"/> (OKAY, EOPNOTSUPP or ERROR, as
    /// <see cref="BlkFront.ReadAsync"/> reports it); a read's buffer then holds the data. A request the frontend itself
    /// failed (broken, disconnected, not connected) completes with ERROR and <paramref name="frontendFailed"/> true,
    /// where the task-based calls throw <see cref="BlkFrontException"/>.
    /// </summary>
    void OnCompleted(BlkFront front, long token, BlkifStatus status, bool frontendFailed);
}
