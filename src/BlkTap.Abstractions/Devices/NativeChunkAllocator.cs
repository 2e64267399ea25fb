using System.Collections.Concurrent;
using System.Runtime.InteropServices;

namespace BlkTap;

/// <summary>
/// The default <see cref="IChunkAllocator"/>: 1 MiB chunks of <see cref="NativeMemory"/>, and a process-wide pool of
/// freed chunks (up to 256 MiB), so a program that makes many short-lived disks (the fuzzer makes one per round) reuses
/// warm memory instead of having the kernel fault in fresh megabytes each time.
/// </summary>
/// <remarks>Threading: safe from any thread.</remarks>
public sealed class NativeChunkAllocator : IChunkAllocator
{
    private const int Size = 1 << 20;
    private const int PoolLimit = 256;
    private readonly ConcurrentStack<nint> _pool = new();

    /// <summary>The one instance (its pool is shared by every disk that uses it).</summary>
    public static NativeChunkAllocator Shared { get; } = new();

    private NativeChunkAllocator() { }

    /// <inheritdoc/>
    public int ChunkSize => Size;

    /// <inheritdoc/>
    public unsafe nint Allocate()
    {
        if (_pool.TryPop(out var pooled)) return pooled; // zeroed when it was freed
        var chunk = (nint)NativeMemory.AlignedAlloc(Size, 4096);
        NativeMemory.Clear((void*)chunk, Size);
        return chunk;
    }

    /// <inheritdoc/>
    public unsafe void Zero(nint chunk) => NativeMemory.Clear((void*)chunk, Size);

    /// <inheritdoc/>
    public unsafe void Free(nint chunk)
    {
        if (_pool.Count < PoolLimit)
        {
            NativeMemory.Clear((void*)chunk, Size);
            _pool.Push(chunk);
        }
        else NativeMemory.AlignedFree((void*)chunk);
    }
}
