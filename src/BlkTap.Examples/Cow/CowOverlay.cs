using BlkTap.Examples.Internal;
using BlkTap.Storage;

namespace BlkTap.Examples;

/// <summary>Which part of a sector range an overlay holds.</summary>
public enum CowCoverage
{
    /// <summary>No sector of the range is in the overlay: the base serves it.</summary>
    None,
    /// <summary>Some sectors are in the overlay, some in the base.</summary>
    Mixed,
    /// <summary>Every sector of the range is in the overlay.</summary>
    All,
}

/// <summary>
/// A persistent copy-on-write overlay file (format: docs/cow-format.md): a checksummed header, a
/// bitmap with one bit per 512-byte sector of the base, and an identity-mapped sparse data area.
/// Writes land in the data area and set bits in memory; <see cref="Flush"/> makes them durable in
/// the crash-safe order (data fsync, then map pages, then fsync).
/// </summary>
/// <remarks>
/// Threading: not thread-safe: one user at a time. The cow tap keeps it serial: its loop uses it while
/// <see cref="Lane"/> is idle, the lane's worker while the lane holds work (<see cref="ReadHeld"/> alone may run on the
/// loop meanwhile: it only reads). The file is opened exclusively
/// (an advisory lock), so a second process or a <c>cow commit</c> cannot use it at the same time.
/// I/O errors surface as <see cref="IOException"/>; a bad file as <see cref="CowFormatException"/>.
/// The file lives on an <see cref="IStorageProvider"/> (null: the OS's files).
/// </remarks>
public sealed class CowOverlay : IDisposable
{
    private readonly IStorageFile _file;
    private readonly IStorageProvider _storage;
    private readonly CowHeader _header;
    private readonly SectorBitmap _map;
    private readonly StorageLane _lane;
    private bool _disposed;

    private CowOverlay(string path, IStorageProvider storage, IStorageFile file, CowHeader header, SectorBitmap map)
    {
        Path = path;
        _storage = storage;
        _file = file;
        _header = header;
        _map = map;
        _lane = new StorageLane(path);
    }

    /// <summary>The worker thread that takes this overlay's I/O that could block (the cow tap's; see <see cref="CowTap"/>).</summary>
    public StorageLane Lane => _lane;

    /// <summary>The overlay file.</summary>
    public string Path { get; }
    /// <summary>Size of the base (and of the virtual disk) in bytes.</summary>
    public long BaseSize => _header.BaseSize;
    /// <summary>The cluster size recorded in the header (4096 or 65536).</summary>
    public int ClusterSize => _header.ClusterSize;
    /// <summary>Sectors of the virtual disk.</summary>
    public ulong SectorCount => _map.Sectors;
    /// <summary>Sectors currently held by the overlay (written, flushed or not).</summary>
    public ulong AllocatedSectors => _map.PopCount();

    /// <summary>
    /// Opens an existing overlay, or creates one for a base of <paramref name="baseSize"/> bytes.
    /// An existing overlay whose base size differs is refused with <see cref="CowFormatException"/>.
    /// Creation is atomic and durable: the file is built under a temporary name, synced, renamed, and the directory synced.
    /// </summary>
    public static CowOverlay OpenOrCreate(string path, long baseSize, int clusterSize, IStorageProvider? storage = null)
    {
        storage = TapStorage.OrDefault(storage);
        if (!storage.FileExists(path))
        {
            var header = CowHeader.Create(baseSize, clusterSize);
            string tmp = $"{path}.creating-{Environment.ProcessId}";
            using (var h = storage.Create(tmp))
            {
                var block = new byte[CowHeader.Size];
                header.Write(block);
                h.SetLength(header.FileLength); // sparse: the map and data area read as zero
                h.Write(block, 0);
                h.Flush();
            }
            // NOTE: rename(2) is atomic: a crash leaves either no overlay or a complete empty one.
            try { storage.Move(tmp, path); }
            catch (IOException) { storage.Delete(tmp); if (!storage.FileExists(path)) throw; }
            // The new name lives in the directory: sync it too, or a power cut could lose the overlay just created.
            storage.SyncDirectory(System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path))!);
        }
        var o = Open(path, storage);
        if (o.BaseSize != baseSize)
        {
            long had = o.BaseSize;
            o.Dispose();
            throw new CowFormatException($"cow overlay '{path}' was made for a base of {had} bytes, but this base is {baseSize} bytes");
        }
        return o;
    }

    /// <summary>Opens an existing overlay; throws <see cref="CowFormatException"/> (missing or corrupt) naming the problem.</summary>
    public static CowOverlay Open(string path) => Open(path, null);

    /// <summary>Opens an existing overlay on <paramref name="storage"/> (null: the OS's files); throws <see cref="CowFormatException"/> (missing or corrupt) naming the problem.</summary>
    public static CowOverlay Open(string path, IStorageProvider? storage)
    {
        storage = TapStorage.OrDefault(storage);
        if (!storage.FileExists(path)) throw new CowFormatException($"cow overlay '{path}' does not exist");
        IStorageFile file;
        try { file = storage.Open(path, StorageOpenOptions.Writable | StorageOpenOptions.Exclusive); }
        catch (IOException ex) { throw new CowFormatException($"cow overlay '{path}' cannot be opened (in use by another tap or commit?): {ex.Message}"); }
        catch (UnauthorizedAccessException ex) { throw new CowFormatException($"cow overlay '{path}' cannot be opened: {ex.Message}"); }
        try
        {
            long length = file.Length;
            var block = new byte[CowHeader.Size];
            int got = file.ReadFully(block, 0);
            var header = CowHeader.Parse(block.AsSpan(0, got), length, path);
            var map = new SectorBitmap(header.MapLength, (ulong)header.BaseSize / 512);
            file.ReadFully(map.Bytes, header.MapOffset);
            // Bits past the last sector mean nothing; drop them so counts are exact.
            ulong sectors = map.Sectors;
            for (ulong s = sectors; s < (ulong)map.Bytes.Length * 8 && (s & 7) != 0; s++) map.Bytes[(int)(s >> 3)] &= (byte)~(1 << (int)(s & 7));
            map.Bytes[(int)((sectors + 7) / 8)..].Clear();
            return new CowOverlay(path, storage, file, header, map);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    /// <summary>How much of [sector, sector+count) the overlay holds.</summary>
    public CowCoverage Coverage(ulong sector, ulong count)
    {
        ulong n = _map.CountSet(sector, count);
        return n == 0 ? CowCoverage.None : n == count ? CowCoverage.All : CowCoverage.Mixed;
    }

    /// <summary>Reads whole sectors from the data area into <paramref name="buffer"/> (whether or not the overlay holds them).</summary>
    public void Read(ulong sector, Span<byte> buffer) => _file.ReadFully(buffer, DataPosition(sector));

    /// <summary>Like <see cref="Read"/>, but only if no device I/O is needed (false: it would have to wait).</summary>
    public bool TryReadNoWait(ulong sector, Span<byte> buffer) => _file.TryReadFullyNoWait(buffer, DataPosition(sector));

    /// <summary>
    /// Like <see cref="Write"/>, but only if the write cannot wait (false: nothing is marked held; part of the data may
    /// have been written, which changes nothing the map shows).
    /// </summary>
    public bool TryWriteNoWait(ulong sector, ReadOnlySpan<byte> data)
    {
        CheckRange(sector, data.Length);
        if (!_file.TryWriteNoWait(data, DataPosition(sector))) return false;
        _map.SetRange(sector, (ulong)data.Length / 512);
        return true;
    }

    /// <summary>Overwrites, in <paramref name="buffer"/> (sectors from <paramref name="sector"/> on), only the sectors the overlay holds.</summary>
    public void ReadHeld(ulong sector, Span<byte> buffer)
    {
        ulong count = (ulong)buffer.Length / 512, at = 0;
        while (at < count)
        {
            ulong skip = _map.Run(sector + at, count - at, set: false);
            at += skip;
            if (at >= count) break;
            ulong run = _map.Run(sector + at, count - at, set: true);
            var part = buffer.Slice((int)at * 512, (int)run * 512);
            // NOTE: a response hook cannot wait: what misses the page cache is read here, blocking (docs/cow-format.md).
            if (!_file.TryReadFullyNoWait(part, DataPosition(sector + at))) _file.ReadFully(part, DataPosition(sector + at));
            at += run;
        }
    }

    /// <summary>
    /// Writes whole sectors into the data area and marks them held (in memory; durable at the next
    /// <see cref="Flush"/>).
    /// </summary>
    public void Write(ulong sector, ReadOnlySpan<byte> data)
    {
        CheckRange(sector, data.Length);
        // NOTE: data before map (docs/cow-format.md, "ordering"): the map bit is only persisted by a
        // later Flush, after the data has been synced.
        _file.Write(data, DataPosition(sector));
        _map.SetRange(sector, (ulong)data.Length / 512);
    }

    /// <summary>
    /// Makes every write so far durable: fsync (data), write the map pages changed since the last
    /// flush, fsync again. After it returns, a crash at any moment cannot lose those writes.
    /// </summary>
    public void Flush()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        _file.Flush();
        if (!_map.HasDirty) return;
        foreach (int page in _map.DirtyPages)
        {
            var bytes = _map.Bytes.Slice(page * CowHeader.MapPage, CowHeader.MapPage);
            _file.Write(bytes, _header.MapOffset + (long)page * CowHeader.MapPage);
        }
        _file.Flush();
        _map.ClearDirty();
    }

    /// <summary>
    /// Folds the overlay into its base image file (which must be exactly <see cref="BaseSize"/>
    /// bytes), syncs the base, then empties the overlay (clears the map, syncs, drops the data).
    /// <paramref name="progress"/> is called with (sectors done, sectors to do). Returns the sectors
    /// copied. Crash-safe at every step: the overlay's view of the disk never changes.
    /// </summary>
    public ulong CommitInto(string basePath, Action<ulong, ulong>? progress = null)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        Flush();
        if (!_storage.FileExists(basePath)) throw new CowFormatException($"base image '{basePath}' does not exist");
        using var baseFile = _storage.Open(basePath, StorageOpenOptions.Writable);
        long baseLength = baseFile.Length;
        if (baseLength != BaseSize)
            throw new CowFormatException($"base image '{basePath}' is {baseLength} bytes, but overlay '{Path}' was made for a base of {BaseSize} bytes");
        ulong total = _map.PopCount(), done = 0, sectors = SectorCount;
        var buffer = new byte[1 << 20];
        for (ulong s = 0; s < sectors;)
        {
            ulong free = _map.Run(s, sectors - s, set: false);
            s += free;
            if (s >= sectors) break;
            ulong run = _map.Run(s, Math.Min(sectors - s, (ulong)buffer.Length / 512), set: true);
            var span = buffer.AsSpan(0, (int)run * 512);
            _file.ReadFully(span, DataPosition(s));
            baseFile.Write(span, (long)s * 512);
            s += run;
            done += run;
            progress?.Invoke(done, total);
        }
        baseFile.Flush();
        // NOTE: the base now holds every overlay sector, so any mix of cleared and uncleared map bits
        // (a crash mid-clear) shows the same disk. Clear the map, sync, and only then drop the data.
        _map.ClearAll();
        _file.Write(_map.Bytes, _header.MapOffset);
        _file.Flush();
        // NOTE: a hole, not a truncate and extend: a crash between those two left a short file that Open refuses
        // (the power-cut simulation's reasoning; its length check is the format's). Where holes are not supported the
        // data stays allocated, harmlessly: no map bit points at it.
        _file.PunchHole(_header.DataOffset, _header.BaseSize);
        _file.Flush();
        return done;
    }

    private long DataPosition(ulong sector) => _header.DataOffset + (long)sector * 512;

    private void CheckRange(ulong sector, int bytes)
    {
        if (bytes % 512 != 0 || sector > SectorCount || (ulong)bytes / 512 > SectorCount - sector)
            throw new ArgumentOutOfRangeException(nameof(sector), $"sectors {sector}+{bytes / 512} are outside the {SectorCount}-sector disk");
    }

    /// <summary>Persists the map (a clean close loses nothing) and closes the file. Errors while flushing are swallowed.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _lane.Dispose(); // what the worker holds runs first
        try { Flush(); } catch (IOException) { }
        _disposed = true;
        _file.Dispose();
    }
}
