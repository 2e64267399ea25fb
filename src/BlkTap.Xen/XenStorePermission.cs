namespace BlkTap.Xen;

/// <summary>Access bits of a xenstore permission entry.</summary>
/// <remarks>NOTE: xenstore_lib.h XS_PERM_NONE 0x00, XS_PERM_READ 0x01, XS_PERM_WRITE 0x02.</remarks>
[Flags]
public enum XenStoreAccess : uint
{
    /// <summary>XS_PERM_NONE.</summary>
    None = 0x00,
    /// <summary>XS_PERM_READ.</summary>
    Read = 0x01,
    /// <summary>XS_PERM_WRITE.</summary>
    Write = 0x02,
    /// <summary>Read and write.</summary>
    ReadWrite = Read | Write,
}

/// <summary>
/// One (domain, access) pair of a node's permission list. The first entry of a list names the owner and gives
/// the access of every domain not listed after it (xenstore.h, xs_set_permissions).
/// </summary>
/// <param name="DomainId">The domain.</param>
/// <param name="Access">What it may do.</param>
public readonly record struct XenStorePermission(ushort DomainId, XenStoreAccess Access);
