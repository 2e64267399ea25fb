namespace BlkTap.Storage;

/// <summary>
/// One piece of work handed to a <see cref="StorageLane"/>: a blocking part run on the lane's worker thread, then a
/// completion run on the event loop. Implementations are usually pooled and reused (no allocation per request).
/// </summary>
/// <remarks>Threading: <see cref="Execute"/> on the worker, <see cref="Complete"/> afterwards on the loop thread.</remarks>
public interface IStorageLaneWork
{
    /// <summary>Worker thread: the file I/O that may wait for the device. Must not throw (turn failures into a status).</summary>
    void Execute();

    /// <summary>Loop thread, after <see cref="Execute"/>, in submission order: answer the request, update loop-side state.</summary>
    void Complete();
}
