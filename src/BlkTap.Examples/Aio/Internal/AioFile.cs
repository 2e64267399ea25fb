using BlkTap.Storage;

namespace BlkTap.Examples.Internal;

/// <summary>
/// One image file the aio tap serves: a storage file shared by every worker (positional I/O shares no
/// file position) and a serialised fsync. Thread-safe.
/// </summary>
internal sealed class AioFile : IDisposable
{
    private readonly object _syncGate = new();

    public AioFile(IStorageFile file)
    {
        File = file;
        Sectors = (ulong)file.Length / BlkifConstants.SectorSize;
    }

    public IStorageFile File { get; }
    public string Path => File.Path;
    public bool ReadOnly => File.ReadOnly;
    public ulong Sectors { get; }
    public int Users;

    /// <summary>fsync; concurrent callers are serialised (a second fsync right after the first is cheap).</summary>
    public void Sync()
    {
        if (ReadOnly) return;
        lock (_syncGate) File.Flush();
    }

    public void Dispose() => File.Dispose();
}
