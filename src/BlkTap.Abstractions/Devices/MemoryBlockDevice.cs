namespace BlkTap;

/// <summary>
/// A sparse in-memory disk: 1 MiB chunks taken on first write, zeroes elsewhere. Sizes far beyond
/// physical memory are fine as long as little is written. The chunks come from the shared array pool and go
/// back to it on <see cref="Dispose"/>, so a program that makes many short-lived disks (the fuzzer makes one
/// per round) reuses warm memory instead of making the GC collect and the kernel fault in a fresh megabyte each time.
/// </summary>
/// <remarks>
/// Threading: concurrent calls on any ranges are safe; overlapping concurrent writes land in some order.
/// <see cref="Dispose"/> only once no call is in flight; afterwards the disk reads as zeroes again.
/// </remarks>
public sealed class MemoryBlockDevice : IBlockDevice
{
    private const int ChunkShift = 20;
    private const int ChunkSize = 1 << ChunkShift;
    private readonly byte[]?[] _chunks;

    /// <summary>Creates a disk of <paramref name="bytes"/> bytes (rounded down to whole sectors).</summary>
    public MemoryBlockDevice(long bytes, bool readOnly = false)
    {
        if (bytes < BlkifConstants.SectorSize) throw new ArgumentOutOfRangeException(nameof(bytes), "a disk needs at least one 512-byte sector");
        SectorCount = (ulong)bytes / BlkifConstants.SectorSize;
        _chunks = new byte[]?[(int)(((long)SectorCount * BlkifConstants.SectorSize + ChunkSize - 1) >> ChunkShift)];
        ReadOnly = readOnly;
    }

    /// <inheritdoc/>
    public ulong SectorCount { get; }
    /// <inheritdoc/>
    public bool ReadOnly { get; }
    /// <inheritdoc/>
    public bool SupportsDiscard => true;

    /// <summary>Bytes of memory the written chunks take.</summary>
    public long AllocatedBytes => _chunks.Count(c => c != null) * (long)ChunkSize;

    /// <inheritdoc/>
    public BlkifStatus Read(ulong sector, Span<byte> buffer)
    {
        if (!InRange(sector, buffer.Length)) return BlkifStatus.Error;
        long pos = (long)sector * BlkifConstants.SectorSize;
        while (!buffer.IsEmpty)
        {
            int chunk = (int)(pos >> ChunkShift), off = (int)(pos & (ChunkSize - 1));
            int n = Math.Min(buffer.Length, ChunkSize - off);
            var c = Volatile.Read(ref _chunks[chunk]);
            if (c == null) buffer[..n].Clear(); else c.AsSpan(off, n).CopyTo(buffer);
            buffer = buffer[n..];
            pos += n;
        }
        return BlkifStatus.Okay;
    }

    /// <inheritdoc/>
    public BlkifStatus Write(ulong sector, ReadOnlySpan<byte> data)
    {
        if (ReadOnly || !InRange(sector, data.Length)) return BlkifStatus.Error;
        long pos = (long)sector * BlkifConstants.SectorSize;
        while (!data.IsEmpty)
        {
            int chunk = (int)(pos >> ChunkShift), off = (int)(pos & (ChunkSize - 1));
            int n = Math.Min(data.Length, ChunkSize - off);
            var c = Volatile.Read(ref _chunks[chunk]);
            if (c == null)
            {
                var fresh = System.Buffers.ArrayPool<byte>.Shared.Rent(ChunkSize);
                fresh.AsSpan(0, ChunkSize).Clear();
                c = Interlocked.CompareExchange(ref _chunks[chunk], fresh, null);
                if (c == null) c = fresh;
                else System.Buffers.ArrayPool<byte>.Shared.Return(fresh); // another writer won the race
            }
            data[..n].CopyTo(c.AsSpan(off, n));
            data = data[n..];
            pos += n;
        }
        return BlkifStatus.Okay;
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
            int chunk = (int)(pos >> ChunkShift), off = (int)(pos & (ChunkSize - 1));
            int n = (int)Math.Min(left, ChunkSize - off);
            if (off == 0 && n == ChunkSize)
            {
                // A reader racing this discard may still copy from the old chunk, so it goes to the GC, not the pool.
                Volatile.Write(ref _chunks[chunk], null);
            }
            else Volatile.Read(ref _chunks[chunk])?.AsSpan(off, n).Clear();
            pos += n;
            left -= n;
        }
        return BlkifStatus.Okay;
    }

    private bool InRange(ulong sector, int bytes) =>
        bytes % BlkifConstants.SectorSize == 0 && BlkifValidation.InRange(sector, (ulong)bytes / BlkifConstants.SectorSize, SectorCount);

    /// <summary>Gives the written chunks back to the shared pool; the disk then reads as zeroes.</summary>
    public void Dispose()
    {
        for (int i = 0; i < _chunks.Length; i++)
            if (Interlocked.Exchange(ref _chunks[i], null) is { } c) System.Buffers.ArrayPool<byte>.Shared.Return(c);
    }
}
