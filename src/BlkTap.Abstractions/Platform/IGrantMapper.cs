namespace BlkTap;

/// <summary>Why a grant operation failed. Protocol failures are values, never exceptions.</summary>
public enum GrantStatus
{
    /// <summary>The pages are mapped.</summary>
    Okay = 0,
    /// <summary>The reference is not granted to this domain (never granted, or revoked).</summary>
    NotGranted,
    /// <summary>A writable mapping was asked of a read-only grant.</summary>
    ReadOnly,
    /// <summary>The granting domain does not exist (or died).</summary>
    NoSuchDomain,
    /// <summary>The mapping failed for another reason (out of resources, an OS error).</summary>
    Failed,
}

/// <summary>
/// Maps a frontend domain's granted pages into this process (gntdev on Xen, page tables in the
/// emulator, a shared file for shmring).
/// </summary>
/// <remarks>
/// Threading: implementations are safe to call from any thread. A mapping stays valid until
/// <see cref="Unmap"/>; a granting domain cannot take a mapped page back (as in Xen, its revoke fails
/// while the page is mapped), so a mapped page is never freed under the mapper's feet.
/// </remarks>
public interface IGrantMapper
{
    /// <summary>
    /// Maps <paramref name="refs"/> granted by <paramref name="domid"/>. On success writes the address
    /// of each 4096-byte page into <paramref name="pages"/> (same length as refs) and returns a handle
    /// for <see cref="Unmap"/>. On failure nothing stays mapped.
    /// </summary>
    GrantStatus Map(ushort domid, ReadOnlySpan<uint> refs, bool writable, Span<nint> pages, out long handle);

    /// <summary>Unmaps a mapping made by <see cref="Map"/>. Unmapping twice is a no-op.</summary>
    void Unmap(long handle);
}
