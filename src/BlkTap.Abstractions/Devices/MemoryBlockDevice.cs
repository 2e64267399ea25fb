namespace BlkTap;

/// <summary>
/// A sparse in-memory disk: chunks of native memory (1 MiB from the default <see cref="NativeChunkAllocator"/>) taken
/// on first write, zeroes elsewhere. Sizes far beyond physical memory are fine as long as little is written. The chunks
/// go back to their <see cref="IChunkAllocator"/> on <see cref="Dispose"/> (or, for a disk nobody disposed, when the
/// garbage collector finalizes it).
/// </summary>
/// <remarks>
/// Threading: concurrent calls on any ranges are safe; overlapping concurrent writes land in some order.
/// <see cref="Dispose"/> only once no call is in flight; afterwards the disk reads as zeroes again.
/// </remarks>
public sealed unsafe class MemoryBlockDevice : IBlockDevice
{
    private readonly IChunkAllocator _allocator;
    private readonly int _chunkShift;
    private readonly int _chunkSize;
    private readonly nint[] _chunks;   // 0: never written (reads as zeroes)
    private long _allocatedChunks;

    /// <summary>Creates a disk of <paramref name="bytes"/> bytes (rounded down to whole sectors).</summary>
    /// <param name="bytes">The size.</param>
    /// <param name="readOnly">Refuse writes and discards.</param>
    /// <param name="allocator">Where the written chunks come from (null: <see cref="NativeChunkAllocator.Shared"/>).</param>
    public MemoryBlockDevice(long bytes, bool readOnly = false, IChunkAllocator? allocator = null)
    {
        if (bytes < BlkifConstants.SectorSize) throw new ArgumentOutOfRangeException(nameof(bytes), "a disk needs at least one 512-byte sector");
        _allocator = allocator ?? NativeChunkAllocator.Shared;
        _chunkSize = _allocator.ChunkSize;
        if (_chunkSize < 4096 || _chunkSize > (1 << 30) || (_chunkSize & (_chunkSize - 1)) != 0)
            throw new ArgumentException($"the allocator's chunk size {_chunkSize} is not a power of two from 4 KiB to 1 GiB", nameof(allocator));
        _chunkShift = System.Numerics.BitOperations.Log2((uint)_chunkSize);
        SectorCount = (ulong)bytes / BlkifConstants.SectorSize;
        _chunks = new nint[(int)(((long)SectorCount * BlkifConstants.SectorSize + _chunkSize - 1) >> _chunkShift)];
        ReadOnly = readOnly;
    }

    /// <summary>Frees the chunks of a disk nobody disposed.</summary>
    ~MemoryBlockDevice() => Release();

    /// <inheritdoc/>
    public ulong SectorCount { get; }
    /// <inheritdoc/>
    public bool ReadOnly { get; }
    /// <inheritdoc/>
    public bool SupportsDiscard => true;

    /// <summary>Bytes of chunks taken for writes (a chunk discarded whole keeps its address but may give its memory back).</summary>
    public long AllocatedBytes => Interlocked.Read(ref _allocatedChunks) * _chunkSize;

    /// <inheritdoc/>
    public BlkifStatus Read(ulong sector, Span<byte> buffer)
    {
        if (!InRange(sector, buffer.Length)) return BlkifStatus.Error;
        long pos = (long)sector * BlkifConstants.SectorSize;
        while (!buffer.IsEmpty)
        {
            int chunk = (int)(pos >> _chunkShift), off = (int)(pos & (_chunkSize - 1));
            int n = Math.Min(buffer.Length, _chunkSize - off);
            nint c = Volatile.Read(ref _chunks[chunk]);
            if (c == 0) buffer[..n].Clear(); else new ReadOnlySpan<byte>((byte*)c + off, n).CopyTo(buffer);
            buffer = buffer[n..];
            pos += n;
        }
        GC.KeepAlive(this); // the finalizer frees the chunks: not while one is being copied
        return BlkifStatus.Okay;
    }

    /// <inheritdoc/>
    public BlkifStatus Write(ulong sector, ReadOnlySpan<byte> data)
    {
        if (ReadOnly || !InRange(sector, data.Length)) return BlkifStatus.Error;
        long pos = (long)sector * BlkifConstants.SectorSize;
        while (!data.IsEmpty)
        {
            int chunk = (int)(pos >> _chunkShift), off = (int)(pos & (_chunkSize - 1));
            int n = Math.Min(data.Length, _chunkSize - off);
            nint c = Volatile.Read(ref _chunks[chunk]);
            if (c == 0) c = Take(chunk);
            StreamingCopy.Copy(data[..n], (byte*)c + off); // the disk's memory is not read again soon: no cache pollution
            data = data[n..];
            pos += n;
        }
        GC.KeepAlive(this); // the finalizer frees the chunks: not while one is being copied
        return BlkifStatus.Okay;
    }

    /// <summary>The chunk's memory, taken now unless another writer took it first.</summary>
    private nint Take(int chunk)
    {
        nint fresh = _allocator.Allocate();
        nint won = Interlocked.CompareExchange(ref _chunks[chunk], fresh, 0);
        if (won != 0)
        {
            _allocator.Free(fresh); // another writer won the race
            return won;
        }
        Interlocked.Increment(ref _allocatedChunks);
        GC.AddMemoryPressure(_chunkSize);
        return fresh;
    }

    /// <inheritdoc/>
    public BlkifStatus Flush() => BlkifStatus.Okay;

    /// <inheritdoc/>
    public BlkifStatus Discard(ulong sector, ulong count)
    {
        if (ReadOnly || !BlkifValidation.InRange(sector, count, SectorCount)) return BlkifStatus.Error;
        long pos = (long)sector * BlkifConstants.SectorSize;
        long left = (long)count * BlkifConstants.SectorSize;
        while (left > 0)
        {
            int chunk = (int)(pos >> _chunkShift), off = (int)(pos & (_chunkSize - 1));
            int n = (int)Math.Min(left, _chunkSize - off);
            nint c = Volatile.Read(ref _chunks[chunk]);
            if (c != 0)
            {
                // A reader racing this discard may still copy from the chunk, so a whole chunk is zeroed in place (its
                // memory may go back to the system), never freed while the disk lives.
                if (off == 0 && n == _chunkSize) _allocator.Zero(c);
                else new Span<byte>((byte*)c + off, n).Clear();
            }
            pos += n;
            left -= n;
        }
        GC.KeepAlive(this); // the finalizer frees the chunks: not while one is being copied
        return BlkifStatus.Okay;
    }

    private bool InRange(ulong sector, int bytes) =>
        bytes % BlkifConstants.SectorSize == 0 && BlkifValidation.InRange(sector, (ulong)bytes / BlkifConstants.SectorSize, SectorCount);

    /// <summary>Gives the written chunks back to their allocator; the disk then reads as zeroes.</summary>
    public void Dispose()
    {
        Release();
        GC.SuppressFinalize(this);
    }

    private void Release()
    {
        for (int i = 0; i < _chunks.Length; i++)
        {
            nint c = Interlocked.Exchange(ref _chunks[i], 0);
            if (c == 0) continue;
            _allocator.Free(c);
            Interlocked.Decrement(ref _allocatedChunks);
            GC.RemoveMemoryPressure(_chunkSize);
        }
    }
}
