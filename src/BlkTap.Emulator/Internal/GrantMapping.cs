namespace BlkTap.Emulator.Internal;

/// <summary>
/// One successful Map: which entries it holds, so Unmap can release them. Recycled through a pool after Unmap, so
/// that mapping a request's pages allocates nothing in steady state (a backend maps and unmaps once per request).
/// </summary>
/// <remarks>Threading: guarded by the emulator's memory gate, like the pool that holds it.</remarks>
internal sealed class GrantMapping
{
    private GrantEntry[] _entries = new GrantEntry[BlkifConstants.MaxSegmentsPerRequest];

    public ushort Mapper { get; private set; }
    public EmulatedDomain Granter { get; private set; } = null!;

    /// <summary>The entries held, in reference order.</summary>
    public ReadOnlySpan<GrantEntry> Entries => _entries.AsSpan(0, Count);

    public int Count { get; private set; }

    private int[] _shadows = new int[BlkifConstants.MaxSegmentsPerRequest];

    /// <summary>Write-protected copies lent to this mapping (slots of <see cref="WriteProtectedPages"/>).</summary>
    public ReadOnlySpan<int> Shadows => _shadows.AsSpan(0, ShadowCount);

    public int ShadowCount { get; private set; }

    public void AddShadow(int slot)
    {
        if (ShadowCount == _shadows.Length) Array.Resize(ref _shadows, _shadows.Length * 2);
        _shadows[ShadowCount++] = slot;
    }

    /// <summary>Makes this mapping hold nothing yet for <paramref name="capacity"/> entries of <paramref name="granter"/>.</summary>
    public void Reset(ushort mapper, EmulatedDomain granter, int capacity)
    {
        Mapper = mapper;
        Granter = granter;
        if (_entries.Length < capacity) _entries = new GrantEntry[capacity];
        Count = 0;
    }

    public void Add(GrantEntry entry) => _entries[Count++] = entry;

    /// <summary>Drops the references (the pooled object must not keep a dead domain's pages reachable).</summary>
    public void Clear()
    {
        Array.Clear(_entries, 0, Count);
        Count = 0;
        ShadowCount = 0;
        Granter = null!;
    }
}
