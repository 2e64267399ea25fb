namespace BlkTap.Emulator.Internal;

/// <summary>
/// gntalloc in the emulator: allocates a domain's pages and grants each to another domain. Ending the
/// grants of a page still mapped leaves it to be freed at the mapper's last unmap (as Xen does).
/// </summary>
/// <remarks>Threading: safe from any thread (the domain and its grant table lock).</remarks>
internal sealed class EmulatedGrantIssuer(EmulatedDomain domain) : IGrantIssuer
{
    public IGrantedPages? Grant(ushort remoteDomain, int pageCount, bool writable, out string? error)
    {
        if (pageCount is < 1 or > 4096) { error = $"cannot grant {pageCount} pages at once (1 to 4096)"; return null; }
        if (!domain.Emulator.TryGetDomain(remoteDomain, out _)) { error = $"domain {remoteDomain} does not exist"; return null; }
        nint address;
        try { address = domain.AllocatePages(pageCount); }
        catch (InvalidOperationException e) { error = e.Message; return null; }
        var refs = new uint[pageCount];
        try
        {
            for (int i = 0; i < pageCount; i++)
                refs[i] = domain.Grants.GrantAccess(remoteDomain, address + i * BlkifConstants.PageSize, readOnly: !writable);
        }
        catch (Exception e) when (e is InvalidOperationException or ArgumentException)
        {
            // The domain died half way: freeing the allocation revokes what was granted.
            if (domain.IsAlive) domain.FreePages(address);
            error = e.Message;
            return null;
        }
        error = null;
        return new Pages(domain, address, refs);
    }

    private sealed class Pages(EmulatedDomain domain, nint address, uint[] refs) : IGrantedPages
    {
        private int _disposed;

        public nint Address => address;
        public int PageCount => refs.Length;
        public uint Reference(int index) => refs[index];

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) != 0 || !domain.IsAlive) return;
            // FreePages revokes every grant on the allocation; a page still mapped by the grantee is
            // freed at its last unmap, never under it.
            domain.FreePages(address);
        }
    }
}
