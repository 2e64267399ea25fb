namespace BlkTap.Testing.Advisories;

/// <summary>
/// A grant mapper in front of another (the emulator's, or gntdev on a real dom0): lets a test act as a hostile guest
/// at the exact moments the backend maps or unmaps (rewrite a ring slot or an indirect page between the backend's
/// fetch and its use), or fail a map as gntdev does when it runs out of slots. Counts what it handed out, so a leak
/// shows.
/// </summary>
/// <remarks>Threading: called on the tap's loop thread; the counters may be read from any thread.</remarks>
internal sealed class InterceptingGrantMapper(IGrantMapper inner) : IGrantMapper
{
    private readonly HashSet<long> _live = new();
    private int _liveCount;

    /// <summary>Runs after a successful map, with the references and the handle (the guest may now rewrite memory).</summary>
    public Action<uint[], long>? AfterMap { get; set; }

    /// <summary>Runs after an unmap of a handle this mapper handed out.</summary>
    public Action<long>? AfterUnmap { get; set; }

    /// <summary>Decides whether a map fails before it reaches the inner mapper (fault injection); null: never.</summary>
    public Func<uint[], bool, GrantStatus?>? Fail { get; set; }

    /// <summary>Mappings handed out and not yet unmapped.</summary>
    public int LiveMappings => Volatile.Read(ref _liveCount);

    /// <summary>Maps that failed (injected or from the inner mapper).</summary>
    public int FailedMaps;

    public GrantStatus Map(ushort domid, ReadOnlySpan<uint> refs, bool writable, Span<nint> pages, out long handle)
    {
        var copy = refs.ToArray();
        if (Fail?.Invoke(copy, writable) is { } injected)
        {
            handle = 0;
            Interlocked.Increment(ref FailedMaps);
            return injected;
        }
        var status = inner.Map(domid, refs, writable, pages, out handle);
        if (status != GrantStatus.Okay) { Interlocked.Increment(ref FailedMaps); return status; }
        lock (_live) { _live.Add(handle); _liveCount = _live.Count; }
        AfterMap?.Invoke(copy, handle);
        return status;
    }

    public void Unmap(long handle)
    {
        inner.Unmap(handle);
        bool ours;
        lock (_live) { ours = _live.Remove(handle); _liveCount = _live.Count; }
        if (ours) AfterUnmap?.Invoke(handle);
    }
}
