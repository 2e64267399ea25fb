using System.Runtime.InteropServices;

namespace BlkTap.Examples;

/// <summary>
/// Pooled 4 KiB native pages for a hook that must change a write's data without writing into the guest's pages
/// (granted read-only on real Xen): <see cref="Redirect"/> copies each segment into a page, lets the hook transform
/// it there and points the segment at it; <see cref="Release"/> takes the request's pages back from the response hook.
/// </summary>
/// <remarks>
/// Threading: loop thread only (one instance per tap). Steady state allocates nothing: pages and page lists are
/// reused. Pages are freed by <see cref="Dispose"/>; a request still in flight then must not complete afterwards.
/// </remarks>
internal sealed unsafe class BouncePages : IDisposable
{
    private readonly Stack<nint> _freePages = new();
    private readonly List<nint[]> _sets = new();
    private readonly List<int> _setCounts = new();
    private readonly Stack<int> _freeSets = new();
    private readonly List<nint> _allPages = new();

    /// <summary>Pages currently lent to requests in flight (diagnostics, tests).</summary>
    public int PagesInUse => _allPages.Count - _freePages.Count;

    /// <summary>
    /// Copies every segment of <paramref name="request"/> into a bounce page, runs <paramref name="transform"/> on the
    /// copy (with the segment's first sector) and redirects the segment to it. Returns the tag value that
    /// <see cref="Release"/> takes (never negative).
    /// </summary>
    public long Redirect<TState>(TapRequest request, Action<TState, Span<byte>, ulong> transform, TState state)
    {
        int set = _freeSets.Count > 0 ? _freeSets.Pop() : NewSet();
        var pages = _sets[set];
        if (pages.Length < request.SegmentCount) _sets[set] = pages = new nint[Math.Max(request.SegmentCount, pages.Length * 2)];
        for (int i = 0; i < request.SegmentCount; i++)
        {
            var segment = request.Segments[i];
            if (segment.Length > BlkifConstants.PageSize)
                throw new InvalidOperationException($"a segment of {segment.Length} bytes is larger than a page");
            nint page = Rent();
            pages[i] = page;
            var copy = new Span<byte>((void*)page, segment.Length);
            segment.Span.CopyTo(copy);
            transform(state, copy, segment.Sector);
            request.RedirectSegment(i, page);
        }
        _setCounts[set] = request.SegmentCount;
        return set;
    }

    /// <summary>Takes back the pages lent under <paramref name="tag"/> (a value <see cref="Redirect"/> returned).</summary>
    public void Release(long tag)
    {
        int set = (int)tag;
        var pages = _sets[set];
        for (int i = 0; i < _setCounts[set]; i++) { _freePages.Push(pages[i]); pages[i] = 0; }
        _setCounts[set] = 0;
        _freeSets.Push(set);
    }

    private int NewSet()
    {
        _sets.Add(new nint[BlkifConstants.MaxSegmentsPerRequest]);
        _setCounts.Add(0);
        return _sets.Count - 1;
    }

    private nint Rent()
    {
        if (_freePages.Count > 0) return _freePages.Pop();
        nint page = (nint)NativeMemory.AlignedAlloc(BlkifConstants.PageSize, BlkifConstants.PageSize);
        _allPages.Add(page);
        return page;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        foreach (var p in _allPages) NativeMemory.AlignedFree((void*)p);
        _allPages.Clear();
        _freePages.Clear();
    }
}
