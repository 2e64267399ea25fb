namespace BlkTap;

/// <summary>
/// Grants pages of this domain to another domain (gntalloc on Xen, the emulator's grant table): the
/// frontend's side of the grant mechanism that <see cref="IGrantMapper"/> is the backend's side of.
/// </summary>
/// <remarks>
/// Threading: implementations are safe to call from any thread. Failures (no such device, out of
/// grant entries) are returned as null plus a reason, never thrown.
/// </remarks>
public interface IGrantIssuer
{
    /// <summary>
    /// Allocates <paramref name="pageCount"/> zeroed, page-aligned, contiguous (in this process) pages and
    /// grants each to <paramref name="remoteDomain"/>, writable or read-only. Returns null with a reason
    /// when that cannot be done; nothing stays allocated then.
    /// </summary>
    IGrantedPages? Grant(ushort remoteDomain, int pageCount, bool writable, out string? error);
}

/// <summary>Pages granted by <see cref="IGrantIssuer.Grant"/>.</summary>
/// <remarks>
/// Threading: the properties may be read from any thread. <see cref="IDisposable.Dispose"/> ends the
/// grants and releases the local mapping; a page the remote domain still has mapped is freed only
/// when it unmaps it (as gntalloc and Xen do), so disposing never pulls memory from under a backend.
/// </remarks>
public interface IGrantedPages : IDisposable
{
    /// <summary>The local address of the first page; the pages follow it, 4096 bytes each.</summary>
    nint Address { get; }

    /// <summary>How many pages.</summary>
    int PageCount { get; }

    /// <summary>The grant reference of page <paramref name="index"/> (0 ≤ index &lt; <see cref="PageCount"/>).</summary>
    uint Reference(int index);
}
