namespace BlkTap.Nbd;

/// <summary>
/// An NBD export held in a byte array (for tests and demos). Thread-safe in the NBD sense: concurrent requests
/// on disjoint ranges never interfere; overlapping concurrent requests may interleave like on a real disk.
/// Trim and write-zeroes both zero the range. Everything is "persistent" at once, so flush only counts calls.
/// </summary>
public sealed class MemoryNbdExportBackend : INbdExportBackend
{
    private readonly byte[] _data;
    private long _flushes;

    /// <summary>Creates a zero-filled export of <paramref name="size"/> bytes (at most <see cref="Array.MaxLength"/>).</summary>
    public MemoryNbdExportBackend(long size, bool readOnly = false, bool canMultiConn = true)
        : this(new byte[CheckSize(size)], readOnly, canMultiConn) { }

    /// <summary>Serves <paramref name="data"/> in place (the array is not copied).</summary>
    public MemoryNbdExportBackend(byte[] data, bool readOnly = false, bool canMultiConn = true)
    {
        _data = data ?? throw new ArgumentNullException(nameof(data));
        ReadOnly = readOnly;
        CanMultiConn = canMultiConn;
    }

    private static int CheckSize(long size) => size is >= 0 and <= int.MaxValue && size <= Array.MaxLength
        ? (int)size
        : throw new ArgumentOutOfRangeException(nameof(size), size, "memory export size must be 0..Array.MaxLength bytes");

    /// <summary>The live contents (not a copy).</summary>
    public byte[] Data => _data;

    /// <summary>How many flushes were requested.</summary>
    public long FlushCount => Interlocked.Read(ref _flushes);

    /// <inheritdoc />
    public ulong Size => (ulong)_data.LongLength;

    /// <inheritdoc />
    public bool ReadOnly { get; }

    /// <inheritdoc />
    public bool CanMultiConn { get; }

    /// <inheritdoc />
    public ValueTask<int> ReadAsync(ulong offset, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        if (!InRange(offset, (ulong)buffer.Length)) return ValueTask.FromResult(NbdError.EINVAL);
        _data.AsSpan((int)offset, buffer.Length).CopyTo(buffer.Span);
        return ValueTask.FromResult(0);
    }

    /// <inheritdoc />
    public ValueTask<int> WriteAsync(ulong offset, ReadOnlyMemory<byte> data, bool fua, CancellationToken cancellationToken)
    {
        if (ReadOnly) return ValueTask.FromResult(NbdError.EPERM);
        if (!InRange(offset, (ulong)data.Length)) return ValueTask.FromResult(NbdError.ENOSPC);
        data.Span.CopyTo(_data.AsSpan((int)offset));
        return ValueTask.FromResult(0);
    }

    /// <inheritdoc />
    public ValueTask<int> FlushAsync(CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _flushes);
        return ValueTask.FromResult(0);
    }

    /// <inheritdoc />
    public ValueTask<int> TrimAsync(ulong offset, uint length, bool fua, CancellationToken cancellationToken) =>
        Zero(offset, length);

    /// <inheritdoc />
    public ValueTask<int> WriteZeroesAsync(ulong offset, uint length, bool fua, bool mayTrim, CancellationToken cancellationToken) =>
        Zero(offset, length);

    private ValueTask<int> Zero(ulong offset, uint length)
    {
        if (ReadOnly) return ValueTask.FromResult(NbdError.EPERM);
        if (!InRange(offset, length)) return ValueTask.FromResult(NbdError.EINVAL);
        _data.AsSpan((int)offset, (int)length).Clear();
        return ValueTask.FromResult(0);
    }

    private bool InRange(ulong offset, ulong length) => offset <= Size && length <= Size - offset;
}
