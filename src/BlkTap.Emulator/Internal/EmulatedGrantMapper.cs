namespace BlkTap.Emulator.Internal;

/// <summary>
/// The emulator's gntdev: maps other domains' grants for one (backend) domain, zero-copy. The page
/// addresses returned are the granting domain's real pages; consecutive pages of one allocation are
/// contiguous, so a multi-page ring granted from one allocation maps to one contiguous range.
/// </summary>
/// <remarks>Threading: safe from any thread (the emulator's memory gate).</remarks>
internal sealed class EmulatedGrantMapper : IGrantMapper
{
    private readonly XenEmulator _emulator;
    private readonly ushort _domid;

    public EmulatedGrantMapper(XenEmulator emulator, ushort domid)
    {
        _emulator = emulator;
        _domid = domid;
    }

    public GrantStatus Map(ushort domid, ReadOnlySpan<uint> refs, bool writable, Span<nint> pages, out long handle)
    {
        if (refs.Length == 0) throw new ArgumentException("map at least one grant reference", nameof(refs));
        if (pages.Length != refs.Length)
            throw new ArgumentException($"pages has {pages.Length} slots for {refs.Length} references", nameof(pages));
        return _emulator.MapGrants(_domid, domid, refs, writable, pages, out handle);
    }

    public void Unmap(long handle) => _emulator.UnmapGrants(handle);
}
