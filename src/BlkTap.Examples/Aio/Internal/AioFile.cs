using Microsoft.Win32.SafeHandles;

namespace BlkTap.Examples.Internal;

/// <summary>
/// One image file the aio tap serves: a handle shared by every worker (positional I/O shares no
/// file position) and a serialised fsync. Thread-safe.
/// </summary>
internal sealed class AioFile : IDisposable
{
    private readonly FileStream _syncer;
    private readonly object _syncGate = new();

    public AioFile(string path, bool readOnly)
    {
        Path = path;
        ReadOnly = readOnly;
        Handle = File.OpenHandle(path, FileMode.Open, readOnly ? FileAccess.Read : FileAccess.ReadWrite, FileShare.ReadWrite, FileOptions.Asynchronous);
        _syncer = new FileStream(Handle, readOnly ? FileAccess.Read : FileAccess.ReadWrite, bufferSize: 0, isAsync: true);
        Sectors = (ulong)RandomAccess.GetLength(Handle) / BlkifConstants.SectorSize;
    }

    public string Path { get; }
    public bool ReadOnly { get; }
    public SafeFileHandle Handle { get; }
    public ulong Sectors { get; }
    public int Users;

    /// <summary>fsync; concurrent callers are serialised (a second fsync right after the first is cheap).</summary>
    public void Sync()
    {
        if (ReadOnly) return;
        lock (_syncGate) _syncer.Flush(flushToDisk: true);
    }

    public void Dispose()
    {
        _syncer.Dispose();
        Handle.Dispose();
    }
}
