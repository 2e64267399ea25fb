namespace BlkTap.Storage;

/// <summary>
/// An optional capability of an <see cref="IStorageFile"/>: reads and writes that never wait for a device. An event
/// loop tries them first and hands only what would wait to a worker (<see cref="StorageLane"/>); a file without the
/// capability (the power-cut simulation, a network file system, a test's slow file) always goes to the worker.
/// </summary>
/// <remarks>
/// Threading: as <see cref="IStorageFile"/> (any thread, concurrently). A "would block" answer may come after part of
/// the transfer happened: the caller then redoes the whole read or write with <see cref="IStorageFile.Read"/> or
/// <see cref="IStorageFile.Write"/> on a worker (positional I/O of the same bytes is idempotent). Failures other than
/// "would block" are thrown as <see cref="IOException"/>, as by the blocking calls. Allocation-free.
/// </remarks>
public interface INoWaitStorageFile : IStorageFile
{
    /// <summary>
    /// Reads up to <c>buffer.Length</c> bytes at <paramref name="offset"/> if that needs no device I/O (Linux:
    /// <c>preadv2(RWF_NOWAIT)</c>, data in the page cache). True with the bytes read in <paramref name="read"/> (fewer
    /// only at the end of the file); false when it would have to wait.
    /// </summary>
    bool TryReadNoWait(Span<byte> buffer, long offset, out int read);

    /// <summary>
    /// Writes all of <paramref name="data"/> at <paramref name="offset"/> if that needs no waiting (Linux:
    /// <c>pwritev2(RWF_NOWAIT)</c>, or a plain write on a file that lives in memory). False when it would have to
    /// wait, or the file cannot tell (then write it on a worker).
    /// </summary>
    bool TryWriteNoWait(ReadOnlySpan<byte> data, long offset);

    /// <summary>
    /// True when no read or write of this file ever waits for a device (Linux: the file lives in tmpfs or ramfs), so
    /// the plain blocking calls are as safe on an event loop as the no-wait ones. False (the default) when the file
    /// cannot promise it.
    /// </summary>
    bool NeverWaits => false;
}
