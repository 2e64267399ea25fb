namespace BlkTap.Emulator;

/// <summary>
/// Provides a <see cref="ReplayDriver"/>'s write data and sees every completion (statistics,
/// verification).
/// </summary>
/// <remarks>
/// Threading: the driver never calls the observer concurrently: <see cref="FillWrite"/> and
/// <see cref="OnCompleted"/> run under the driver's lock, on whatever thread issues or completes
/// (the emulator's scheduler in deterministic mode), or, on the batch path
/// (<see cref="ReplayDriverOptions.BatchSubmission"/>), on the emulator's scheduler. Keep them short and never block:
/// on the batch path they run between a frontend's responses and its next push.
/// </remarks>
public interface IReplayObserver
{
    /// <summary>Fills the data of a write-like request before it is issued.</summary>
    /// <param name="request">The request.</param>
    /// <param name="writeSequence">Its write sequence number (1, 2, ... in issue order).</param>
    /// <param name="data">The buffer to fill, exactly <see cref="ReplayRequest.Length"/> bytes.</param>
    void FillWrite(in ReplayRequest request, ulong writeSequence, Span<byte> data);

    /// <summary>
    /// A request completed. <paramref name="readData"/> holds what a successful read returned (empty
    /// otherwise). No request that overlaps it on the same disk, where either modifies the disk, was
    /// in flight at the same time, so the content a read returned is exactly determined by the
    /// modifications completed before it.
    /// </summary>
    void OnCompleted(in ReplayCompletion completion, ReadOnlySpan<byte> readData);

    /// <summary>
    /// False when <see cref="OnCompleted"/> ignores what reads return: the batch path then reads with
    /// <see cref="BlkFrontBatchOperation.ReadUncopied"/> (the frontend copies nothing out of its pages) and
    /// <see cref="OnCompleted"/> gets an empty <c>readData</c> for every read. Default true. Read once, when a run starts.
    /// </summary>
    bool WantsReadData => true;

}
