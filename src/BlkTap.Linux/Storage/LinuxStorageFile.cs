using BlkTap.Storage;
using Microsoft.Win32.SafeHandles;

namespace BlkTap.Linux.Storage;

/// <summary>
/// A file of the OS: pread/pwrite through <see cref="RandomAccess"/>, fsync for <see cref="Flush"/>,
/// fallocate(PUNCH_HOLE) through <see cref="FileHoles"/>. Opened by <see cref="LinuxStorageProvider"/>.
/// </summary>
/// <remarks>Threading: as <see cref="IStorageFile"/> (concurrent calls are safe; dispose after the last). No allocation per call.</remarks>
public sealed class LinuxStorageFile : IStorageFile
{
    private readonly SafeFileHandle _handle;
    private readonly FileStream _syncer;

    internal LinuxStorageFile(string path, SafeFileHandle handle, bool readOnly)
    {
        Path = path;
        ReadOnly = readOnly;
        _handle = handle;
        // NOTE: FileStream.Flush(flushToDisk: true) is fsync(2); with no buffer it holds nothing else.
        _syncer = new FileStream(handle, readOnly ? FileAccess.Read : FileAccess.ReadWrite, bufferSize: 0);
    }

    /// <inheritdoc/>
    public string Path { get; }
    /// <inheritdoc/>
    public bool ReadOnly { get; }
    /// <inheritdoc/>
    public long Length => RandomAccess.GetLength(_handle);

    /// <inheritdoc/>
    public int Read(Span<byte> buffer, long offset) => RandomAccess.Read(_handle, buffer, offset);

    /// <inheritdoc/>
    public void Write(ReadOnlySpan<byte> data, long offset) => RandomAccess.Write(_handle, data, offset);

    /// <inheritdoc/>
    public void SetLength(long length) => RandomAccess.SetLength(_handle, length);

    /// <inheritdoc/>
    public void Flush()
    {
        if (!ReadOnly) _syncer.Flush(flushToDisk: true);
    }

    /// <inheritdoc/>
    public BlkifStatus PunchHole(long offset, long length) => ReadOnly ? BlkifStatus.Error : FileHoles.PunchHole(_handle, offset, length);

    /// <inheritdoc/>
    public void Dispose()
    {
        _syncer.Dispose();
        _handle.Dispose();
    }
}
