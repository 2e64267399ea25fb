using BlkTap.Emulator.Internal;

namespace BlkTap.Emulator;

/// <summary>
/// A domain's grant table: the pages it offers to other domains, by grant reference
/// (<c>gnttab_grant_foreign_access</c> / <c>gnttab_end_foreign_access_ref</c>).
/// </summary>
/// <remarks>
/// Threading: every member is safe to call from any thread (one lock per emulator guards all grant
/// tables, memory and mappings).
/// NOTE: references start at 8: xen/include/public/grant_table.h reserves the first entries
/// (GNTTAB_NR_RESERVED_ENTRIES = 8) for the toolstack (console and xenstore pages). Freed references
/// are reused, oldest first, like Linux's free list.
/// </remarks>
public sealed class GrantTable
{
    /// <summary>The first reference handed out (GNTTAB_NR_RESERVED_ENTRIES).</summary>
    public const uint FirstReference = 8;

    private readonly EmulatedDomain _domain;
    private readonly object _gate;
    private readonly List<GrantEntry?> _entries = new(); // index = reference - FirstReference
    private readonly Queue<uint> _free = new();

    internal GrantTable(EmulatedDomain domain, object gate)
    {
        _domain = domain;
        _gate = gate;
    }

    /// <summary>
    /// Grants <paramref name="toDomain"/> access to <paramref name="page"/>, which must be the start of
    /// one of this domain's pages (from <see cref="EmulatedDomain.AllocatePages"/>). Returns the reference.
    /// </summary>
    /// <exception cref="ArgumentException">The address is not the start of a live page of this domain.</exception>
    /// <exception cref="InvalidOperationException">The domain is dead.</exception>
    public uint GrantAccess(ushort toDomain, nint page, bool readOnly)
    {
        lock (_gate)
        {
            if (!_domain.IsAlive) throw new InvalidOperationException($"domain {_domain.Id} is dead; it cannot grant pages");
            if (!_domain.TryFindPageLocked(page, out var allocation, out int index))
                throw new ArgumentException($"0x{page:x} is not the start of a page owned by domain {_domain.Id}", nameof(page));
            uint reference;
            if (_free.Count > 0) reference = _free.Dequeue();
            else
            {
                reference = FirstReference + (uint)_entries.Count;
                _entries.Add(null);
            }
            _entries[(int)(reference - FirstReference)] = new GrantEntry(reference, toDomain, allocation, index, readOnly);
            return reference;
        }
    }

    /// <summary>
    /// Revokes a grant. Returns false, leaving the grant in place, while the grantee still has the page
    /// mapped (as <c>gnttab_end_foreign_access_ref</c> does); true once revoked.
    /// </summary>
    /// <exception cref="ArgumentException">The reference is not an active grant of this domain.</exception>
    public bool EndAccess(uint reference)
    {
        lock (_gate)
        {
            var entry = LookupLocked(reference);
            if (entry == null || !entry.Active)
                throw new ArgumentException($"grant reference {reference} is not an active grant of domain {_domain.Id}", nameof(reference));
            if (entry.MapCount > 0) return false;
            entry.Active = false;
            ReleaseLocked(entry);
            return true;
        }
    }

    /// <summary>True while <paramref name="reference"/> is granted (not revoked).</summary>
    public bool IsGranted(uint reference)
    {
        lock (_gate) return LookupLocked(reference) is { Active: true };
    }

    /// <summary>How many live mappings the grantee holds of <paramref name="reference"/> (0 if none or unknown).</summary>
    public int MapCount(uint reference)
    {
        lock (_gate) return LookupLocked(reference)?.MapCount ?? 0;
    }

    /// <summary>Number of active (not revoked) grants.</summary>
    public int ActiveCount
    {
        get
        {
            lock (_gate)
            {
                int n = 0;
                foreach (var e in _entries) if (e is { Active: true }) n++;
                return n;
            }
        }
    }

    internal GrantEntry? LookupLocked(uint reference)
    {
        if (reference < FirstReference) return null;
        ulong index = reference - FirstReference;
        return index < (ulong)_entries.Count ? _entries[(int)index] : null;
    }

    /// <summary>Revokes every grant on pages of <paramref name="allocation"/> (or all, when null); mapped ones stay until unmapped.</summary>
    internal void RevokeLocked(PageAllocation? allocation)
    {
        for (int i = 0; i < _entries.Count; i++)
        {
            var entry = _entries[i];
            if (entry is not { Active: true }) continue;
            if (allocation != null && entry.Allocation != allocation) continue;
            entry.Active = false;
            if (entry.MapCount == 0) ReleaseLocked(entry);
        }
    }

    /// <summary>Called when a revoked entry's last mapping goes away.</summary>
    internal void OnUnmappedLocked(GrantEntry entry)
    {
        if (!entry.Active && entry.MapCount == 0) ReleaseLocked(entry);
    }

    private void ReleaseLocked(GrantEntry entry)
    {
        int index = (int)(entry.Reference - FirstReference);
        if (_entries[index] != entry) return;
        _entries[index] = null;
        if (_domain.IsAlive) _free.Enqueue(entry.Reference);
    }
}
