namespace BlkTap;

/// <summary>
/// Where a <see cref="MemoryBlockDevice"/> keeps what is written to it: zeroed blocks of native memory of one size,
/// taken on a block's first write and given back when the disk is disposed. The default,
/// <see cref="NativeChunkAllocator.Shared"/>, works everywhere; BlkTap.Linux's <c>HugePageChunkAllocator</c> backs each
/// block with one transparent huge page (one page fault and one TLB entry per 2 MiB instead of 512 of each).
/// </summary>
/// <remarks>Threading: every member may be called from any thread, concurrently.</remarks>
public interface IChunkAllocator
{
    /// <summary>Bytes in a chunk: a power of two from 4 KiB to 1 GiB, the same for every chunk.</summary>
    int ChunkSize { get; }

    /// <summary>A chunk of <see cref="ChunkSize"/> bytes, every byte zero, page-aligned, valid until <see cref="Free"/>.</summary>
    /// <exception cref="OutOfMemoryException">No memory for it.</exception>
    nint Allocate();

    /// <summary>
    /// Makes every byte of <paramref name="chunk"/> zero again; its memory may go back to the system (the address stays
    /// valid, and the next write takes memory again).
    /// </summary>
    void Zero(nint chunk);

    /// <summary>Gives <paramref name="chunk"/> back; nothing may touch it afterwards.</summary>
    void Free(nint chunk);
}
