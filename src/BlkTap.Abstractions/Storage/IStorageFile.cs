namespace BlkTap.Storage;

/// <summary>
/// One open file of the storage a tap keeps its data in (an image, an overlay): positional reads and writes,
/// length, a durable flush and hole punching. <see cref="IStorageProvider"/> opens it. The seam between the
/// storage taps (<c>img</c>, <c>aio</c>, <c>cow</c>) and the disk: the OS implementation is
/// <c>BlkTap.Linux.Storage.LinuxStorageProvider</c>; the power-cut simulation
/// (<c>BlkTap.Emulator.PowerCut.PowerCutStorage</c>) records writes and flushes instead.
/// </summary>
/// <remarks>
/// Threading: every member is safe from any thread, concurrently (positional I/O shares no file position), except
/// <see cref="IDisposable.Dispose"/>, which must come after the last call. Failures are thrown as
/// <see cref="IOException"/> (or <see cref="UnauthorizedAccessException"/>), except <see cref="PunchHole"/>, which
/// answers a status. Allocation-free per call in the OS implementation (the taps call it once per request).
/// </remarks>
public interface IStorageFile : IDisposable
{
    /// <summary>The path it was opened with.</summary>
    string Path { get; }

    /// <summary>True when opened read-only: writes, <see cref="SetLength"/> and <see cref="PunchHole"/> fail.</summary>
    bool ReadOnly { get; }

    /// <summary>The file's current length in bytes.</summary>
    long Length { get; }

    /// <summary>
    /// Reads up to <c>buffer.Length</c> bytes at <paramref name="offset"/> (pread); returns the bytes read, fewer
    /// only at the end of the file (0 past it). <see cref="StorageFileExtensions.ReadFully"/> loops and zero-fills.
    /// </summary>
    int Read(Span<byte> buffer, long offset);

    /// <summary>Writes all of <paramref name="data"/> at <paramref name="offset"/> (pwrite), growing the file if it ends before.</summary>
    void Write(ReadOnlySpan<byte> data, long offset);

    /// <summary>Truncates or extends the file (an extension reads as zeroes).</summary>
    void SetLength(long length);

    /// <summary>
    /// Makes every write, length change and hole completed on this file before the call durable (fsync): after it
    /// returns, a power cut cannot lose them. Not the file's name: a new or renamed file also needs
    /// <see cref="IStorageProvider.SyncDirectory"/>.
    /// </summary>
    void Flush();

    /// <summary>
    /// Deallocates <paramref name="length"/> bytes at <paramref name="offset"/>, keeping the length: the range reads
    /// as zeroes afterwards (fallocate PUNCH_HOLE|KEEP_SIZE). Returns OKAY, NotSupported where the storage cannot
    /// punch holes, or ERROR. Like a write, it is durable only after <see cref="Flush"/>.
    /// </summary>
    BlkifStatus PunchHole(long offset, long length);
}
