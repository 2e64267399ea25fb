namespace BlkTap.Storage;

/// <summary>
/// An optional capability of an <see cref="IStorageFile"/>: a submission queue (Linux: io_uring) that takes many
/// reads and writes and starts them all with one system call. An event loop queues a pass's requests and submits them
/// once at the end of the pass. Offered only where the queued operations never wait for a device (files in memory);
/// elsewhere <see cref="OpenQueue"/> answers null and the loop uses <see cref="INoWaitStorageFile"/> and a worker.
/// </summary>
/// <remarks>Threading: <see cref="OpenQueue"/> from any thread; the queue it opens belongs to one thread at a time.</remarks>
public interface IQueuedStorageFile : IStorageFile
{
    /// <summary>
    /// Opens a queue of at least <paramref name="entries"/> operations on this file, or returns null: with the reason in
    /// <paramref name="unavailable"/> when the file would offer one but the system refuses (no io_uring, disabled), with
    /// null there when this file offers none (not in memory).
    /// </summary>
    IStorageQueue? OpenQueue(int entries, out string? unavailable);
}

/// <summary>
/// Reads and writes of one file gathered and started together (<see cref="IQueuedStorageFile.OpenQueue"/>). Each
/// operation carries a tag the caller chooses; its result comes back with that tag.
/// </summary>
/// <remarks>
/// Threading: one thread at a time (the event loop's). The memory of a queued operation must stay valid and unmoved
/// until its result has been reaped. Operations of one batch may run in any order, concurrently: callers must not
/// queue overlapping operations of which one is a write in the same batch. Allocation-free. Dispose after the last
/// <see cref="SubmitAndWait"/> (what is queued and not submitted is dropped).
/// </remarks>
public interface IStorageQueue : IDisposable
{
    /// <summary>How many operations a batch holds (queued and not yet reaped).</summary>
    int Capacity { get; }

    /// <summary>
    /// The smallest batch the queue starts faster than one blocking call per operation; callers do smaller batches with
    /// <see cref="IStorageFile.Read"/> and <see cref="IStorageFile.Write"/>.
    /// </summary>
    int MinimumBatch { get; }

    /// <summary>Operations queued or submitted whose result has not been reaped.</summary>
    int Outstanding { get; }

    /// <summary>Queues a read of <paramref name="length"/> bytes at <paramref name="offset"/> into <paramref name="address"/>. Throws when the batch is full.</summary>
    void QueueRead(nint address, int length, long offset, int tag);

    /// <summary>Queues a write of <paramref name="length"/> bytes at <paramref name="offset"/> from <paramref name="address"/>. Throws when the batch is full.</summary>
    void QueueWrite(nint address, int length, long offset, int tag);

    /// <summary>
    /// Starts everything queued (one system call) and waits until every outstanding operation has a result to reap.
    /// Throws <see cref="IOException"/> when the queue itself fails (the operations' own failures are results).
    /// </summary>
    void SubmitAndWait();

    /// <summary>
    /// The next result: the <paramref name="tag"/> of the operation and its <paramref name="result"/>, the bytes
    /// transferred (fewer than asked: end of file or a short transfer) or minus the errno. False when none is waiting.
    /// </summary>
    bool TryReap(out int tag, out int result);
}
