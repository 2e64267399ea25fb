using BlkTap.Storage;

namespace BlkTap.Examples.Qcow2;

/// <summary>What a qcow2 image reads its unallocated clusters from: a raw file or another qcow2 image, read-only.</summary>
/// <remarks>Threading: as the owning image's (one thread).</remarks>
internal interface IQcow2Backing : IDisposable
{
    /// <summary>The backing disk's size in bytes; reads past it return zeroes.</summary>
    long Size { get; }

    /// <summary>Fills <paramref name="buffer"/> with the backing disk's bytes at <paramref name="offset"/> (zeroes past its end).</summary>
    void ReadAt(long offset, Span<byte> buffer);
}

/// <summary>A raw backing file, opened read-only.</summary>
internal sealed class RawBacking(IStorageFile file) : IQcow2Backing
{
    public long Size { get; } = file.Length;

    public void ReadAt(long offset, Span<byte> buffer)
    {
        if (offset >= Size) { buffer.Clear(); return; }
        int inside = (int)Math.Min(buffer.Length, Size - offset);
        file.ReadFully(buffer[..inside], offset);
        buffer[inside..].Clear();
    }

    public void Dispose() => file.Dispose();
}
