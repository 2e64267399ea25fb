using BlkTap.Storage;

namespace BlkTap.Emulator.PowerCut.Internal;

/// <summary>
/// An open file of a <see cref="PowerCutStorage"/>: every call goes to the storage, which records it (and fails it once
/// the power is cut). Threading: as <see cref="IStorageFile"/> (the storage's lock serialises calls).
/// </summary>
internal sealed class PowerCutFile : IStorageFile
{
    private readonly PowerCutStorage _storage;
    private readonly PowerCutInode _inode;
    private readonly bool _exclusive;
    private int _disposed;

    public PowerCutFile(PowerCutStorage storage, PowerCutInode inode, string path, bool readOnly, bool exclusive)
    {
        _storage = storage;
        _inode = inode;
        Path = path;
        ReadOnly = readOnly;
        _exclusive = exclusive;
    }

    public string Path { get; }
    public bool ReadOnly { get; }
    public long Length => _storage.LengthOf(_inode, this);

    public int Read(Span<byte> buffer, long offset) => _storage.Read(_inode, this, buffer, offset);

    public void Write(ReadOnlySpan<byte> data, long offset)
    {
        CheckWritable();
        if (offset < 0) throw new ArgumentOutOfRangeException(nameof(offset));
        _storage.Change(_inode, this, new PendingChange(PendingKind.Write, offset, data.Length, data.ToArray()));
    }

    public void SetLength(long length)
    {
        CheckWritable();
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        _storage.Change(_inode, this, new PendingChange(PendingKind.SetLength, 0, length, null));
    }

    public void Flush()
    {
        if (!ReadOnly) _storage.Sync(_inode, this);
    }

    public BlkifStatus PunchHole(long offset, long length)
    {
        if (ReadOnly || offset < 0 || length <= 0) return BlkifStatus.Error;
        try { _storage.Change(_inode, this, new PendingChange(PendingKind.PunchHole, offset, length, null)); return BlkifStatus.Okay; }
        catch (IOException) { return BlkifStatus.Error; }
    }

    public bool IsDisposed => Volatile.Read(ref _disposed) != 0;

    private void CheckWritable()
    {
        if (ReadOnly) throw new UnauthorizedAccessException($"'{Path}' is open read-only");
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0) _storage.Close(_inode, _exclusive);
    }
}
