using BlkTap.Linux.Storage;
using BlkTap.Storage;

namespace BlkTap.Examples.Tests.Lanes;

/// <summary>The OS's files, each wrapped by <c>wrap</c> (path, file) when it returns non-null.</summary>
internal sealed class WrappingStorage(Func<string, IStorageFile, IStorageFile?> wrap) : IStorageProvider
{
    private static readonly LinuxStorageProvider Os = LinuxStorageProvider.Shared;
    public bool FileExists(string path) => Os.FileExists(path);
    public bool DirectoryExists(string path) => Os.DirectoryExists(path);
    public IStorageFile Open(string path, StorageOpenOptions options) { var f = Os.Open(path, options); return wrap(path, f) ?? f; }
    public IStorageFile Create(string path) { var f = Os.Create(path); return wrap(path, f) ?? f; }
    public void Move(string from, string to) => Os.Move(from, to);
    public void Delete(string path) => Os.Delete(path);
    public void SyncDirectory(string directory) => Os.SyncDirectory(directory);
}

/// <summary>A file without the non-blocking capability, so every read, write and flush goes to the worker; each read and write first sleeps <c>delay</c>.</summary>
internal sealed class SlowFile(IStorageFile inner, TimeSpan delay) : IStorageFile
{
    public int Calls;
    public string Path => inner.Path;
    public bool ReadOnly => inner.ReadOnly;
    public long Length => inner.Length;
    public int Read(Span<byte> buffer, long offset) { Slow(); return inner.Read(buffer, offset); }
    public void Write(ReadOnlySpan<byte> data, long offset) { Slow(); inner.Write(data, offset); }
    public void SetLength(long length) => inner.SetLength(length);
    public void Flush() => inner.Flush();
    public BlkifStatus PunchHole(long offset, long length) => inner.PunchHole(offset, length);
    public void Dispose() => inner.Dispose();
    private void Slow()
    {
        Interlocked.Increment(ref Calls);
        if (delay > TimeSpan.Zero) Thread.Sleep(delay);
    }
}

/// <summary>
/// A file whose non-blocking calls say "would block" at random (probability <c>wouldBlock</c>, seeded; 1: always, so
/// the worker takes everything) and otherwise do the I/O; it logs every write, flush and the thread it ran on.
/// </summary>
internal sealed class FlakyNoWaitFile(IStorageFile inner, double wouldBlock, int seed) : INoWaitStorageFile
{
    private readonly Random _random = new(seed);
    private readonly object _gate = new();
    public readonly List<(string Op, long Offset, int Length, int Thread)> Log = new();
    public int LoopReads, LoopWrites, WorkerReads, WorkerWrites;

    public string Path => inner.Path;
    public bool ReadOnly => inner.ReadOnly;
    public long Length => inner.Length;

    private bool Blocks() { lock (_gate) return _random.NextDouble() < wouldBlock; }
    private void Note(string op, long offset, int length) { lock (_gate) Log.Add((op, offset, length, Environment.CurrentManagedThreadId)); }

    public bool TryReadNoWait(Span<byte> buffer, long offset, out int read)
    {
        read = 0;
        if (Blocks()) return false;
        Interlocked.Increment(ref LoopReads);
        read = inner.Read(buffer, offset);
        return true;
    }

    public bool TryWriteNoWait(ReadOnlySpan<byte> data, long offset)
    {
        if (Blocks()) return false;
        Interlocked.Increment(ref LoopWrites);
        inner.Write(data, offset);
        Note("write", offset, data.Length);
        return true;
    }

    public int Read(Span<byte> buffer, long offset) { Interlocked.Increment(ref WorkerReads); return inner.Read(buffer, offset); }
    public void Write(ReadOnlySpan<byte> data, long offset) { Interlocked.Increment(ref WorkerWrites); inner.Write(data, offset); Note("write", offset, data.Length); }
    public void SetLength(long length) => inner.SetLength(length);
    public void Flush() { Note("flush-start", 0, 0); inner.Flush(); Note("flush-end", 0, 0); }
    public BlkifStatus PunchHole(long offset, long length) { Note("punch", offset, (int)length); return inner.PunchHole(offset, length); }
    public void Dispose() => inner.Dispose();

    /// <summary>A copy of the log (any thread).</summary>
    public List<(string Op, long Offset, int Length, int Thread)> Snapshot() { lock (_gate) return [.. Log]; }
}
