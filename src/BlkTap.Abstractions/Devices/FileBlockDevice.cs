using Microsoft.Win32.SafeHandles;

namespace BlkTap;

/// <summary>
/// A raw image file or block device: positional reads and writes (pread/pwrite), fsync for flush.
/// The capacity is the file's size, rounded down to whole sectors.
/// </summary>
/// <remarks>
/// Threading: concurrent calls are safe (positional I/O shares no file position). I/O errors come
/// back as <see cref="BlkifStatus.Error"/>, never as exceptions.
/// </remarks>
public sealed class FileBlockDevice : IBlockDevice
{
    private readonly SafeFileHandle _handle;
    private readonly FileStream _flusher;
    private readonly Func<SafeFileHandle, long, long, BlkifStatus>? _punchHole;

    /// <summary>Opens <paramref name="path"/>; throws <see cref="IOException"/> (with the path) if it cannot be opened.</summary>
    /// <param name="path">The image file or block device.</param>
    /// <param name="readOnly">Refuse writes.</param>
    /// <param name="punchHole">How to discard a byte range (e.g. BlkTap.Linux.FileHoles.PunchHole); null: discard is not offered.</param>
    public FileBlockDevice(string path, bool readOnly = false, Func<SafeFileHandle, long, long, BlkifStatus>? punchHole = null)
    {
        _punchHole = readOnly ? null : punchHole;
        Path = path;
        ReadOnly = readOnly;
        _handle = File.OpenHandle(path, FileMode.Open, readOnly ? FileAccess.Read : FileAccess.ReadWrite, FileShare.ReadWrite);
        _flusher = new FileStream(_handle, readOnly ? FileAccess.Read : FileAccess.ReadWrite, bufferSize: 0);
        long length = RandomAccess.GetLength(_handle);
        SectorCount = (ulong)length / BlkifConstants.SectorSize;
    }

    /// <summary>The file's path.</summary>
    public string Path { get; }
    /// <inheritdoc/>
    public ulong SectorCount { get; }
    /// <inheritdoc/>
    public bool ReadOnly { get; }
    /// <inheritdoc/>
    public bool SupportsDiscard => _punchHole != null;

    /// <inheritdoc/>
    public BlkifStatus Read(ulong sector, Span<byte> buffer)
    {
        if (!InRange(sector, buffer.Length)) return BlkifStatus.Error;
        try
        {
            long offset = (long)sector * BlkifConstants.SectorSize;
            while (!buffer.IsEmpty)
            {
                int n = RandomAccess.Read(_handle, buffer, offset);
                if (n <= 0) { buffer.Clear(); break; } // a file shrunk under us reads as zeroes
                buffer = buffer[n..];
                offset += n;
            }
            return BlkifStatus.Okay;
        }
        catch (IOException) { return BlkifStatus.Error; }
        catch (UnauthorizedAccessException) { return BlkifStatus.Error; }
    }

    /// <inheritdoc/>
    public BlkifStatus Write(ulong sector, ReadOnlySpan<byte> data)
    {
        if (ReadOnly || !InRange(sector, data.Length)) return BlkifStatus.Error;
        try
        {
            RandomAccess.Write(_handle, data, (long)sector * BlkifConstants.SectorSize);
            return BlkifStatus.Okay;
        }
        catch (IOException) { return BlkifStatus.Error; }
        catch (UnauthorizedAccessException) { return BlkifStatus.Error; }
    }

    /// <inheritdoc/>
    public BlkifStatus Flush()
    {
        if (ReadOnly) return BlkifStatus.Okay;
        try { _flusher.Flush(flushToDisk: true); return BlkifStatus.Okay; }
        catch (IOException) { return BlkifStatus.Error; }
    }

    /// <inheritdoc/>
    public BlkifStatus Discard(ulong sector, ulong count)
    {
        if (_punchHole == null) return BlkifStatus.NotSupported;
        if (!BlkifValidation.InRange(sector, count, SectorCount)) return BlkifStatus.Error;
        if (count == 0) return BlkifStatus.Okay;
        return _punchHole(_handle, (long)sector * BlkifConstants.SectorSize, (long)count * BlkifConstants.SectorSize);
    }

    private bool InRange(ulong sector, int bytes) =>
        bytes % BlkifConstants.SectorSize == 0 && BlkifValidation.InRange(sector, (ulong)bytes / BlkifConstants.SectorSize, SectorCount);

    /// <inheritdoc/>
    public void Dispose()
    {
        _flusher.Dispose();
        _handle.Dispose();
    }
}
