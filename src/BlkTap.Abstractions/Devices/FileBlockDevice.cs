using BlkTap.Storage;

namespace BlkTap;

/// <summary>
/// A raw image file or block device: positional reads and writes on an <see cref="IStorageFile"/>, its durable
/// flush (fsync) for FLUSH, its hole punching for discard. The capacity is the file's size at open, rounded down to
/// whole sectors.
/// </summary>
/// <remarks>
/// Threading: concurrent calls are safe (positional I/O shares no file position). I/O errors come
/// back as <see cref="BlkifStatus.Error"/>, never as exceptions. Owns the file: <see cref="Dispose"/> closes it.
/// </remarks>
public sealed class FileBlockDevice : IBlockDevice
{
    private readonly IStorageFile _file;
    private readonly bool _discard;

    /// <summary>Serves <paramref name="file"/> (opened by an <see cref="IStorageProvider"/>); read-only when the file is.</summary>
    /// <param name="file">The image, owned from now on.</param>
    /// <param name="discard">Offer discard (punches holes through <see cref="IStorageFile.PunchHole"/>); never on a read-only file.</param>
    public FileBlockDevice(IStorageFile file, bool discard)
    {
        ArgumentNullException.ThrowIfNull(file);
        _file = file;
        ReadOnly = file.ReadOnly;
        _discard = discard && !ReadOnly;
        SectorCount = (ulong)file.Length / BlkifConstants.SectorSize;
    }

    /// <summary>The file's path.</summary>
    public string Path => _file.Path;
    /// <inheritdoc/>
    public ulong SectorCount { get; }
    /// <inheritdoc/>
    public bool ReadOnly { get; }
    /// <inheritdoc/>
    public bool SupportsDiscard => _discard;

    /// <inheritdoc/>
    public BlkifStatus Read(ulong sector, Span<byte> buffer)
    {
        if (!InRange(sector, buffer.Length)) return BlkifStatus.Error;
        try
        {
            _file.ReadFully(buffer, (long)sector * BlkifConstants.SectorSize); // a file shrunk under us reads as zeroes
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
            _file.Write(data, (long)sector * BlkifConstants.SectorSize);
            return BlkifStatus.Okay;
        }
        catch (IOException) { return BlkifStatus.Error; }
        catch (UnauthorizedAccessException) { return BlkifStatus.Error; }
    }

    /// <inheritdoc/>
    public BlkifStatus Flush()
    {
        if (ReadOnly) return BlkifStatus.Okay;
        try { _file.Flush(); return BlkifStatus.Okay; }
        catch (IOException) { return BlkifStatus.Error; }
        catch (ObjectDisposedException) { return BlkifStatus.Error; }
    }

    /// <inheritdoc/>
    public BlkifStatus Discard(ulong sector, ulong count)
    {
        if (!_discard) return BlkifStatus.NotSupported;
        if (!BlkifValidation.InRange(sector, count, SectorCount)) return BlkifStatus.Error;
        if (count == 0) return BlkifStatus.Okay;
        return _file.PunchHole((long)sector * BlkifConstants.SectorSize, (long)count * BlkifConstants.SectorSize);
    }

    private bool InRange(ulong sector, int bytes) =>
        bytes % BlkifConstants.SectorSize == 0 && BlkifValidation.InRange(sector, (ulong)bytes / BlkifConstants.SectorSize, SectorCount);

    /// <inheritdoc/>
    public void Dispose() => _file.Dispose();
}
