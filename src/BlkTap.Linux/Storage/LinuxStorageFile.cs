using BlkTap.Linux.Interop;
using BlkTap.Storage;
using Microsoft.Win32.SafeHandles;

namespace BlkTap.Linux.Storage;

/// <summary>
/// A file of the OS: pread/pwrite through <see cref="RandomAccess"/> (on a file in memory, straight to libc without the
/// runtime's GC transition: <see cref="Interop.Libc.PreadInMemory"/>), fsync for <see cref="Flush"/>, fallocate(PUNCH_HOLE)
/// through <see cref="FileHoles"/>. Opened by <see cref="LinuxStorageProvider"/>.
/// </summary>
/// <remarks>
/// <para>Threading: as <see cref="IStorageFile"/> (concurrent calls are safe; dispose after the last). No allocation per call.</para>
/// <para>
/// Without waiting (<see cref="INoWaitStorageFile"/>), decided per file: a file on tmpfs or ramfs lives in memory, so
/// its reads and writes are plain pread/pwrite (this kernel, 6.18, answers EOPNOTSUPP to RWF_NOWAIT on tmpfs) and it says
/// so (<see cref="NeverWaits"/>). Any
/// other file reads with <c>preadv2(RWF_NOWAIT)</c> and writes with <c>pwritev2(RWF_NOWAIT)</c>; the first EOPNOTSUPP
/// (ext4 buffered writes on this kernel) turns that direction off for the file, so its writes always go to a worker.
/// </para>
/// <para>
/// Referenced (<see cref="IReferenceableStorageFile"/>): a file in memory lends its handle, so the NBD export sends a
/// large read's bytes from the page cache with sendfile instead of reading them into a buffer and writing that.
/// </para>
/// <para>
/// Queued (<see cref="IQueuedStorageFile"/>): a file in memory offers an io_uring (<see cref="UringQueue"/>), so a loop
/// starts a whole pass's reads and writes with one system call; other files offer none (a queued read missing the page
/// cache would hold the loop in <see cref="IStorageQueue.SubmitAndWait"/>).
/// </para>
/// <para>
/// Mapped (<see cref="IMappableStorageFile"/>, asked for with <see cref="TryMap"/>): a file in memory copies reads and
/// writes of pages known to hold data through a shared mapping (<see cref="FileMapping"/>), the rest as before.
/// </para>
/// </remarks>
public sealed class LinuxStorageFile : INoWaitStorageFile, IQueuedStorageFile, IReferenceableStorageFile, IMappableStorageFile
{
    private readonly SafeFileHandle _handle;
    private readonly FileStream _syncer;
    private readonly bool _inMemory;
    private bool _readsNoWait = true;
    private bool _writesNoWait = true;
    private readonly Lock _mapGate = new();
    private volatile FileMapping? _mapping;

    internal LinuxStorageFile(string path, SafeFileHandle handle, bool readOnly)
    {
        Path = path;
        ReadOnly = readOnly;
        _handle = handle;
        // NOTE: FileStream.Flush(flushToDisk: true) is fsync(2); with no buffer it holds nothing else.
        _syncer = new FileStream(handle, readOnly ? FileAccess.Read : FileAccess.ReadWrite, bufferSize: 0);
        long type = Libc.FstatfsType(handle);
        _inMemory = type == Libc.TMPFS_MAGIC || type == Libc.RAMFS_MAGIC;
    }

    /// <summary>True when the file lives in memory (tmpfs, ramfs): its reads and writes never wait for a device.</summary>
    public bool InMemory => _inMemory;

    /// <inheritdoc/>
    public bool NeverWaits => _inMemory;

    /// <inheritdoc/>
    public SafeFileHandle? ReferenceHandle => _inMemory ? _handle : null;

    /// <inheritdoc/>
    public bool Mapped => _mapping != null;

    /// <inheritdoc/>
    public long MappedOperations => _mapping?.Operations ?? 0;

    /// <inheritdoc/>
    public bool TryMap(out string? unavailable)
    {
        unavailable = null;
        if (!_inMemory) return false; // not offered: a copy through a disk file's mapping could wait for the device
        lock (_mapGate)
        {
            if (_mapping != null) return true;
            _mapping = FileMapping.Create(_handle, Length, ReadOnly, out unavailable);
            return _mapping != null;
        }
    }

    /// <inheritdoc/>
    public string Path { get; }
    /// <inheritdoc/>
    public bool ReadOnly { get; }
    /// <inheritdoc/>
    public long Length => RandomAccess.GetLength(_handle);

    /// <inheritdoc/>
    public int Read(Span<byte> buffer, long offset) => _inMemory ? ReadInMemory(buffer, offset) : RandomAccess.Read(_handle, buffer, offset);

    /// <inheritdoc/>
    public void Write(ReadOnlySpan<byte> data, long offset)
    {
        if (_inMemory) WriteInMemory(data, offset);
        else RandomAccess.Write(_handle, data, offset);
    }

    /// <summary>A file in memory: one pread without the GC transition (<see cref="Libc.PreadInMemory"/>).</summary>
    private unsafe int ReadInMemory(Span<byte> buffer, long offset)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        if (_mapping is { } mapping && mapping.TryRead(buffer, offset)) return buffer.Length;
        bool added = false;
        try
        {
            _handle.DangerousAddRef(ref added);
            nint rc;
            fixed (byte* p = buffer) rc = Libc.PreadInMemory((int)_handle.DangerousGetHandle(), p, (nuint)buffer.Length, offset);
            if (rc < 0) throw new IOException(Errno.Message("pread", (int)-rc, Path));
            return (int)rc;
        }
        finally { if (added) _handle.DangerousRelease(); }
    }

    /// <summary>A file in memory: pwrite without the GC transition until all is written (<see cref="Libc.PwriteInMemory"/>).</summary>
    private unsafe void WriteInMemory(ReadOnlySpan<byte> data, long offset)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        if (ReadOnly) throw new UnauthorizedAccessException($"{Path}: the file is open read-only"); // as RandomAccess.Write
        var mapping = _mapping;
        if (mapping != null && mapping.TryWrite(data, offset)) return;
        long start = offset;
        bool added = false;
        try
        {
            _handle.DangerousAddRef(ref added);
            int fd = (int)_handle.DangerousGetHandle();
            while (!data.IsEmpty)
            {
                nint rc;
                fixed (byte* p = data) rc = Libc.PwriteInMemory(fd, p, (nuint)data.Length, offset);
                if (rc < 0) throw new IOException(Errno.Message("pwrite", (int)-rc, Path));
                if (rc == 0) throw new IOException(Errno.Message("pwrite", Errno.ENOSPC, Path));
                data = data[(int)rc..];
                offset += rc;
            }
        }
        finally
        {
            if (added) _handle.DangerousRelease();
            mapping?.MarkWritten(start, offset - start); // the pages it reached hold data now, even after a failure
        }
    }

    /// <inheritdoc/>
    public unsafe bool TryReadNoWait(Span<byte> buffer, long offset, out int read)
    {
        if (_inMemory) { read = ReadInMemory(buffer, offset); return true; }
        read = 0;
        if (!_readsNoWait) return false;
        nint rc;
        fixed (byte* p = buffer) rc = Libc.Preadv2(_handle, p, (nuint)buffer.Length, offset, Libc.RWF_NOWAIT);
        if (rc >= 0) { read = (int)rc; return true; }
        if (rc == -Errno.EAGAIN) return false;
        if (rc == -Errno.EOPNOTSUPP) { _readsNoWait = false; return false; }
        throw new IOException(Errno.Message("preadv2", (int)-rc, Path));
    }

    /// <inheritdoc/>
    public unsafe bool TryWriteNoWait(ReadOnlySpan<byte> data, long offset)
    {
        if (_inMemory) { WriteInMemory(data, offset); return true; }
        if (!_writesNoWait) return false;
        while (!data.IsEmpty)
        {
            nint rc;
            fixed (byte* p = data) rc = Libc.Pwritev2(_handle, p, (nuint)data.Length, offset, Libc.RWF_NOWAIT);
            if (rc > 0) { data = data[(int)rc..]; offset += rc; continue; }
            if (rc == -Errno.EAGAIN || rc == 0) return false;
            if (rc == -Errno.EOPNOTSUPP) { _writesNoWait = false; return false; }
            throw new IOException(Errno.Message("pwritev2", (int)-rc, Path));
        }
        return true;
    }

    /// <inheritdoc/>
    public IStorageQueue? OpenQueue(int entries, out string? unavailable)
    {
        if (!_inMemory) { unavailable = null; return null; } // not offered: a read missing the page cache would hold the loop
        return UringQueue.Open(_handle, entries, out unavailable);
    }

    /// <inheritdoc/>
    public void SetLength(long length)
    {
        _mapping?.Shorten(length); // before the file shrinks: a copy past its end would raise SIGBUS
        RandomAccess.SetLength(_handle, length);
    }

    /// <inheritdoc/>
    public void Flush()
    {
        if (!ReadOnly) _syncer.Flush(flushToDisk: true);
    }

    /// <inheritdoc/>
    public BlkifStatus PunchHole(long offset, long length)
    {
        if (ReadOnly) return BlkifStatus.Error;
        var mapping = _mapping;
        mapping?.Forget(offset, length); // before: no copy may fault a punched page back in
        var status = FileHoles.PunchHole(_handle, offset, length);
        mapping?.Forget(offset, length); // after: a chunk scanned meanwhile may have marked the pages again
        return status;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        _mapping?.Dispose();
        _syncer.Dispose();
        _handle.Dispose();
    }
}
