using BlkTap.Emulator.Internal;

namespace BlkTap.Emulator;

/// <summary>
/// One emulated Xen domain: its memory (native, 4096-aligned pages), its grant table and its event
/// channels. Created by <see cref="XenEmulator.CreateDomain"/>; domain 0 always exists.
/// </summary>
/// <remarks>
/// Threading: every member is safe to call from any thread. Pages handed out are plain native memory:
/// reading and writing them is unsynchronised, exactly like shared memory between real domains.
/// </remarks>
public sealed unsafe class EmulatedDomain
{
    private readonly XenEmulator _emulator;
    private readonly object _gate;
    private readonly Dictionary<nint, (PageAllocation Allocation, int Index)> _pages = new();
    private readonly Dictionary<nint, PageAllocation> _allocations = new();
    private volatile bool _alive = true;

    internal EmulatedDomain(XenEmulator emulator, ushort id, string name, object memoryGate, object eventGate)
    {
        _emulator = emulator;
        _gate = memoryGate;
        Id = id;
        Name = name;
        Grants = new GrantTable(this, memoryGate);
        EventChannels = new EventChannelTable(this, emulator, eventGate);
    }

    /// <summary>The domain id (0 for dom0).</summary>
    public ushort Id { get; }

    /// <summary>The domain's name (also written to xenstore <c>/local/domain/&lt;id&gt;/name</c>).</summary>
    public string Name { get; }

    /// <summary>False once the domain was destroyed.</summary>
    public bool IsAlive => _alive;

    /// <summary>The emulator this domain belongs to.</summary>
    public XenEmulator Emulator => _emulator;

    /// <summary>The domain's grant table.</summary>
    public GrantTable Grants { get; }

    /// <summary>The domain's event channels.</summary>
    public EventChannelTable EventChannels { get; }

    /// <summary>
    /// Allocates <paramref name="count"/> contiguous zeroed pages of 4096 bytes, 4096-aligned, and
    /// returns the address of the first. Each page (address + i*4096) can be granted on its own.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="count"/> is not in 1..4096.</exception>
    /// <exception cref="InvalidOperationException">The domain is dead.</exception>
    public nint AllocatePages(int count = 1)
    {
        if (count is < 1 or > 4096) throw new ArgumentOutOfRangeException(nameof(count), count, "allocate 1 to 4096 pages at a time");
        lock (_gate)
        {
            if (!_alive) throw new InvalidOperationException($"domain {Id} is dead; it cannot allocate pages");
            var allocation = new PageAllocation(this, count);
            _allocations.Add(allocation.Base, allocation);
            for (int i = 0; i < count; i++) _pages.Add(allocation.PageAddress(i), (allocation, i));
            _emulator.OnPagesAllocatedLocked(count);
            return allocation.Base;
        }
    }

    /// <summary>
    /// Gives back an allocation made by <see cref="AllocatePages"/> (pass the address it returned).
    /// Grants on its pages are revoked; if another domain still maps one of them, the memory is freed
    /// at that domain's last unmap instead of now, so no mapper ever sees freed memory.
    /// </summary>
    /// <exception cref="ArgumentException">The address is not an allocation of this domain.</exception>
    public void FreePages(nint address)
    {
        lock (_gate)
        {
            if (!_allocations.Remove(address, out var allocation))
                throw new ArgumentException($"0x{address:x} is not an allocation of domain {Id}", nameof(address));
            ReleaseLocked(allocation);
        }
    }

    /// <summary>The 4096 bytes of one of this domain's pages.</summary>
    /// <exception cref="ArgumentException">The address is not the start of a live page of this domain.</exception>
    public Span<byte> GetPage(nint page)
    {
        lock (_gate)
        {
            if (!_pages.ContainsKey(page)) throw new ArgumentException($"0x{page:x} is not the start of a page owned by domain {Id}", nameof(page));
        }
        return new Span<byte>((void*)page, BlkifConstants.PageSize);
    }

    /// <summary>True when <paramref name="page"/> is the start of a live page of this domain.</summary>
    public bool OwnsPage(nint page)
    {
        lock (_gate) return _pages.ContainsKey(page);
    }

    /// <summary>Pages this domain currently owns (allocated and not given back).</summary>
    public int PageCount
    {
        get { lock (_gate) return _pages.Count; }
    }

    internal bool TryFindPageLocked(nint page, out PageAllocation allocation, out int index)
    {
        if (_pages.TryGetValue(page, out var found))
        {
            (allocation, index) = found;
            return true;
        }
        allocation = null!;
        index = -1;
        return false;
    }

    private void ReleaseLocked(PageAllocation allocation)
    {
        for (int i = 0; i < allocation.PageCount; i++) _pages.Remove(allocation.PageAddress(i));
        Grants.RevokeLocked(allocation);
        if (allocation.RequestFree()) _emulator.OnPagesFreedLocked(allocation.PageCount);
    }

    /// <summary>Marks the domain dead, revokes its grants and frees (or defers freeing) its memory. Memory gate held.</summary>
    internal void KillLocked()
    {
        if (!_alive) return;
        _alive = false;
        Grants.RevokeLocked(null);
        foreach (var allocation in _allocations.Values) ReleaseLocked(allocation);
        _allocations.Clear();
    }

    /// <inheritdoc/>
    public override string ToString() => $"domain {Id} ({Name}{(_alive ? "" : ", dead")})";
}
