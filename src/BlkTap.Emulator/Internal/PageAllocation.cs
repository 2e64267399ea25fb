using System.Diagnostics;
using System.Runtime.InteropServices;

namespace BlkTap.Emulator.Internal;

/// <summary>
/// A run of contiguous, 4096-aligned native pages owned by one domain. Freed when its owner frees it
/// or dies, but only once no page of it is mapped by another domain (the free is deferred until the
/// last unmap).
/// </summary>
/// <remarks>Threading: guarded by the emulator's memory gate; every member is called with it held.</remarks>
internal sealed unsafe class PageAllocation
{
    private readonly int[] _mapCounts;

    public PageAllocation(EmulatedDomain owner, int pageCount)
    {
        Owner = owner;
        PageCount = pageCount;
        _mapCounts = new int[pageCount];
        nuint bytes = (nuint)pageCount * BlkifConstants.PageSize;
        Base = (nint)NativeMemory.AlignedAlloc(bytes, BlkifConstants.PageSize);
        NativeMemory.Clear((void*)Base, bytes);
    }

    public EmulatedDomain Owner { get; }
    public nint Base { get; }
    public int PageCount { get; }

    /// <summary>The owner no longer wants the pages; they are freed at the last unmap.</summary>
    public bool FreeRequested { get; private set; }

    public bool Freed { get; private set; }

    public nint PageAddress(int index) => Base + index * BlkifConstants.PageSize;

    public int TotalMapCount
    {
        get
        {
            int sum = 0;
            foreach (var c in _mapCounts) sum += c;
            return sum;
        }
    }

    public void AddMapping(int pageIndex) => _mapCounts[pageIndex]++;

    /// <summary>Drops one mapping; returns true when this freed the memory (a deferred free completed).</summary>
    public bool RemoveMapping(int pageIndex)
    {
        Debug.Assert(_mapCounts[pageIndex] > 0, "unmapping a page that is not mapped");
        _mapCounts[pageIndex]--;
        return FreeRequested && TryFree();
    }

    /// <summary>Asks for the memory to be freed: now if nothing maps it, else at the last unmap. True if freed now.</summary>
    public bool RequestFree()
    {
        FreeRequested = true;
        return TryFree();
    }

    private bool TryFree()
    {
        if (Freed || TotalMapCount != 0) return false;
        NativeMemory.AlignedFree((void*)Base);
        Freed = true;
        return true;
    }
}
