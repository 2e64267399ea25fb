namespace BlkTap.Emulator.Internal;

/// <summary>
/// Grants of an shmring frontend: reference g, 1 ≤ g ≤ N, is page g of the shared file; every other
/// reference (0, which is the ring page, and anything above N) is not granted. Mapping is address
/// arithmetic, so nothing is ever left mapped and <see cref="Unmap"/> has nothing to do.
/// </summary>
/// <remarks>
/// Threading: safe from any thread. After <see cref="Revoke"/> every Map fails, so a request that
/// races the end of a session cannot obtain an address of memory about to be unmapped.
/// </remarks>
internal sealed class ShmringGrantMapper(ShmringMemory memory) : IGrantMapper
{
    private volatile bool _revoked;

    /// <summary>Stops handing out pages (the session ended).</summary>
    public void Revoke() => _revoked = true;

    /// <inheritdoc/>
    public GrantStatus Map(ushort domid, ReadOnlySpan<uint> refs, bool writable, Span<nint> pages, out long handle)
    {
        handle = 0;
        if (_revoked) return GrantStatus.Failed;
        if (pages.Length < refs.Length) return GrantStatus.Failed;
        uint n = memory.GrantPages;
        for (int i = 0; i < refs.Length; i++)
        {
            uint g = refs[i];
            // NOTE: shmring (docs/shmring.md): page 0 is the ring, mapped by the transport, never a grant.
            if (g == 0 || g > n) return GrantStatus.NotGranted;
            pages[i] = memory.Address + (nint)((long)g * ShmringProtocol.PageSize);
        }
        handle = 1;
        return GrantStatus.Okay;
    }

    /// <inheritdoc/>
    public void Unmap(long handle) { }
}
