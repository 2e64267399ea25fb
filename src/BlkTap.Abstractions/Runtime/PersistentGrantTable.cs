namespace BlkTap;

/// <summary>
/// One ring's persistently mapped grants (blkback's per-ring <c>persistent_gnts</c> tree): each grant reference the
/// frontend names is mapped once, writable, and kept until the ring goes away; past <see cref="Capacity"/> grants a
/// request's other pages are mapped and unmapped per request as without the feature.
/// </summary>
/// <remarks>
/// Threading: loop thread only (the ring's session owns it).
/// NOTE: blkif.h "feature-persistent" (frontend side): the frontend reuses the same grants for all transactions,
/// "allowing the backend to map them with write access (even when it should be read-only)". So a write's data
/// pages are mapped writable here, unlike the per-request path; a frontend that nevertheless granted a page
/// read-only gets that page mapped per request, read-only, instead of an error.
/// NOTE: blkif.h (backend side): the number of grants a backend keeps is its own choice, ideally RING_SIZE *
/// BLKIF_MAX_SEGMENTS_PER_REQUEST; Linux blkback bounds it per ring by its max_persistent_grants parameter
/// (default 1056 = 32 slots * 11 segments * 3).
/// </remarks>
internal sealed class PersistentGrantTable(IGrantMapper mapper, ushort domid, int capacity, int expected)
{
    // Sized once for what the ring can have in flight (its slots times 11 segments), so steady state never grows it.
    private readonly Dictionary<uint, Entry> _entries = new(Math.Min(capacity, expected));

    private readonly record struct Entry(nint Page, long Handle);

    /// <summary>The most grants kept mapped.</summary>
    public int Capacity { get; } = capacity;

    /// <summary>Grants mapped now.</summary>
    public int Count => _entries.Count;

    /// <summary>
    /// Resolves <paramref name="refs"/> to page addresses: kept grants from the table, new ones mapped and kept while
    /// there is room, the rest mapped together for this request only (<paramref name="transient"/>, 0 if none, to
    /// unmap when the request completes). On failure nothing of this request's transient mapping stays.
    /// </summary>
    // The stackalloc'd index and reference arrays are written before they are read.
    [System.Runtime.CompilerServices.SkipLocalsInit]
    public GrantStatus Map(ReadOnlySpan<uint> refs, bool writable, Span<nint> pages, out long transient)
    {
        transient = 0;
        Span<int> missing = refs.Length <= 32 ? stackalloc int[32] : new int[refs.Length];
        int missingCount = 0;
        Span<nint> one = stackalloc nint[1];
        for (int i = 0; i < refs.Length; i++)
        {
            uint gref = refs[i];
            if (_entries.TryGetValue(gref, out var kept)) { pages[i] = kept.Page; continue; }
            if (_entries.Count < Capacity &&
                mapper.Map(domid, refs.Slice(i, 1), writable: true, one, out var handle) == GrantStatus.Okay)
            {
                _entries.Add(gref, new Entry(one[0], handle));
                pages[i] = one[0];
                continue;
            }
            missing[missingCount++] = i;
        }
        if (missingCount == 0) return GrantStatus.Okay;
        Span<uint> rest = missingCount <= 32 ? stackalloc uint[32] : new uint[missingCount];
        Span<nint> restPages = missingCount <= 32 ? stackalloc nint[32] : new nint[missingCount];
        rest = rest[..missingCount];
        restPages = restPages[..missingCount];
        for (int k = 0; k < missingCount; k++) rest[k] = refs[missing[k]];
        var status = mapper.Map(domid, rest, writable, restPages, out transient);
        if (status != GrantStatus.Okay) { transient = 0; return status; }
        for (int k = 0; k < missingCount; k++) pages[missing[k]] = restPages[k];
        return GrantStatus.Okay;
    }

    /// <summary>Unmaps every kept grant (at disconnect, once no request of the ring is in flight).</summary>
    public void UnmapAll()
    {
        foreach (var e in _entries.Values) mapper.Unmap(e.Handle);
        _entries.Clear();
    }
}
