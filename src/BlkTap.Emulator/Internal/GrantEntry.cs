namespace BlkTap.Emulator.Internal;

/// <summary>One active grant-table entry: a page of the granting domain offered to one other domain.</summary>
/// <remarks>Threading: guarded by the emulator's memory gate.</remarks>
internal sealed class GrantEntry
{
    public GrantEntry(uint reference, ushort toDomain, PageAllocation allocation, int pageIndex, bool readOnly)
    {
        Reference = reference;
        ToDomain = toDomain;
        Allocation = allocation;
        PageIndex = pageIndex;
        ReadOnly = readOnly;
        Active = true;
    }

    public uint Reference { get; }
    public ushort ToDomain { get; }
    public PageAllocation Allocation { get; }
    public int PageIndex { get; }
    public bool ReadOnly { get; }
    public nint Page => Allocation.PageAddress(PageIndex);

    /// <summary>New maps are allowed. False once revoked (EndAccess, free of the page, death of the domain).</summary>
    public bool Active { get; set; }

    /// <summary>Live mappings of this entry by the grantee.</summary>
    public int MapCount { get; set; }
}
