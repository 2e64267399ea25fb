using System.IO.MemoryMappedFiles;

namespace BlkTap.Emulator.Internal;

/// <summary>
/// Pages that exist twice in this process: a writable view the emulator fills and a read-only view it hands to a
/// backend as a read-only grant mapping. A backend that writes through the read-only view faults with SIGSEGV
/// (.NET: a fatal AccessViolationException), as a user-space backend writing into a gntdev mapping made without
/// PROT_WRITE does on real Xen. Chunks of 256 pages (shared memory, two views each) are added on demand and
/// reused; no system call per page in steady state. A disposed emulator's chunks go to a small process-wide
/// spare list the next emulator takes from: a process that makes many short-lived emulators (the fuzzer makes one per
/// round, on every core) would otherwise spend a good part of each round in memfd_create, mmap, msync and munmap.
/// </summary>
/// <remarks>
/// Threading: guarded by the emulator's memory gate; every member is called with it held. The spare list has its own
/// lock. A chunk goes back only when its emulator is disposed, when no backend may touch its pages any more.
/// </remarks>
internal sealed unsafe class WriteProtectedPages : IDisposable
{
    private const int PagesPerChunk = 256;
    private readonly List<Chunk> _chunks = new();
    private readonly Stack<int> _free = new();
    private static readonly Stack<Chunk> Spare = new();
    private static readonly int MaxSpare = Math.Max(4, 2 * Environment.ProcessorCount);

    /// <summary>Slots lent out (diagnostics, tests).</summary>
    public int InUse => _chunks.Count * PagesPerChunk - _free.Count;

    /// <summary>Copies <paramref name="source"/> (one page) into a free slot; returns the slot and its read-only address.</summary>
    public int Rent(nint source, out nint readOnlyAddress)
    {
        if (_free.Count == 0) AddChunk();
        int slot = _free.Pop();
        var chunk = _chunks[slot / PagesPerChunk];
        int offset = slot % PagesPerChunk * BlkifConstants.PageSize;
        new ReadOnlySpan<byte>((void*)source, BlkifConstants.PageSize).CopyTo(new Span<byte>((void*)(chunk.Writable + offset), BlkifConstants.PageSize));
        readOnlyAddress = chunk.ReadOnly + offset;
        return slot;
    }

    /// <summary>Gives a slot back (its read-only address must no longer be used).</summary>
    public void Return(int slot) => _free.Push(slot);

    private void AddChunk()
    {
        Chunk? chunk;
        lock (Spare) Spare.TryPop(out chunk);
        _chunks.Add(chunk ?? NewChunk());
        int first = (_chunks.Count - 1) * PagesPerChunk;
        for (int i = PagesPerChunk - 1; i >= 0; i--) _free.Push(first + i);
    }

    private static Chunk NewChunk()
    {
        long bytes = (long)PagesPerChunk * BlkifConstants.PageSize;
        var file = MemoryMappedFile.CreateNew(null, bytes, MemoryMappedFileAccess.ReadWrite);
        var rw = file.CreateViewAccessor(0, bytes, MemoryMappedFileAccess.ReadWrite);
        var ro = file.CreateViewAccessor(0, bytes, MemoryMappedFileAccess.Read);
        byte* w = null, r = null;
        rw.SafeMemoryMappedViewHandle.AcquirePointer(ref w);
        ro.SafeMemoryMappedViewHandle.AcquirePointer(ref r);
        // NOTE: the views start page-aligned (mmap); PointerOffset is 0 for a view at offset 0.
        return new Chunk(file, rw, ro, (nint)(w + rw.PointerOffset), (nint)(r + ro.PointerOffset));
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        foreach (var c in _chunks)
        {
            // Rent copies a whole page into a slot before lending it, so a spare chunk's old contents never show.
            lock (Spare)
            {
                if (Spare.Count < MaxSpare) { Spare.Push(c); continue; }
            }
            c.WritableView.SafeMemoryMappedViewHandle.ReleasePointer();
            c.ReadOnlyView.SafeMemoryMappedViewHandle.ReleasePointer();
            c.WritableView.Dispose();
            c.ReadOnlyView.Dispose();
            c.File.Dispose();
        }
        _chunks.Clear();
        _free.Clear();
    }

    private sealed record Chunk(MemoryMappedFile File, MemoryMappedViewAccessor WritableView, MemoryMappedViewAccessor ReadOnlyView, nint Writable, nint ReadOnly);
}
