using System.Runtime.InteropServices;

namespace BlkTap.Micro;

/// <summary>Page-aligned native pages for rings and data (freed on Dispose). One thread.</summary>
public sealed unsafe class NativePages : IDisposable
{
    private readonly nint[] _pages;

    public NativePages(int count)
    {
        _pages = new nint[count];
        for (int i = 0; i < count; i++)
        {
            _pages[i] = (nint)NativeMemory.AlignedAlloc(4096, 4096);
            new Span<byte>((void*)_pages[i], 4096).Clear();
        }
    }

    public nint this[int index] => _pages[index];

    public int Count => _pages.Length;

    public void Dispose()
    {
        foreach (var p in _pages) NativeMemory.AlignedFree((void*)p);
    }
}
