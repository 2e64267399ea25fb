using BlkTap.Linux.Interop;
using BlkTap.Xen.Interop;

namespace BlkTap.Xen;

/// <summary>
/// Pages granted by <see cref="GntallocGrantIssuer"/>: one gntalloc allocation (an mmap offset and its grant
/// references) and this process's mapping of it.
/// </summary>
/// <remarks>
/// Threading: the properties may be read from any thread; <see cref="Dispose"/> is idempotent and safe from any
/// thread. <see cref="Address"/> keeps its value after Dispose but the memory is gone then.
/// </remarks>
internal sealed class GntallocGrantedPages : IGrantedPages
{
    private readonly SafeFdHandle _fd;
    private readonly SafeMmapHandle _map;
    private readonly ulong _index;
    private readonly uint[] _refs;
    private int _disposed;

    /// <summary>Takes ownership of <paramref name="map"/> and of the allocation at <paramref name="index"/>.</summary>
    public GntallocGrantedPages(SafeFdHandle fd, SafeMmapHandle map, ulong index, uint[] refs)
    {
        _fd = fd;
        _map = map;
        _index = index;
        _refs = refs;
        Address = map.Address;
    }

    /// <inheritdoc />
    public nint Address { get; }

    /// <inheritdoc />
    public int PageCount => _refs.Length;

    /// <inheritdoc />
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="index"/> is not a page of this allocation.</exception>
    public uint Reference(int index)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(index, _refs.Length);
        return _refs[index];
    }

    /// <summary>Unmaps the pages here, then ends the allocation (munmap, IOCTL_GNTALLOC_DEALLOC_GREF). Idempotent.</summary>
    /// <remarks>
    /// NOTE: drivers/xen/gntalloc.c frees a page only when its last user is gone: this mapping, the allocation on the
    /// file, and the remote domain's map (gnttab_end_foreign_access fails while it is mapped; the page is then
    /// reclaimed by a later gntalloc call). So disposing never pulls memory from under a backend.
    /// </remarks>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        _map.Dispose();
        Deallocate(_fd, _index, (uint)_refs.Length);
    }

    /// <summary>
    /// IOCTL_GNTALLOC_DEALLOC_GREF for <paramref name="count"/> pages at <paramref name="index"/>. A closed
    /// <paramref name="fd"/> (the issuer was disposed) needs none: the kernel releases every allocation of the device
    /// once its descriptor is closed and its last mapping is gone.
    /// </summary>
    internal static unsafe void Deallocate(SafeFdHandle fd, ulong index, uint count)
    {
        bool added = false;
        try
        {
            fd.DangerousAddRef(ref added);
            var op = new IoctlGntallocDeallocGref { Index = index, Count = count };
            // Failure (EINVAL: no such allocation) leaves nothing to undo; closing the device releases it anyway.
            Libc.Ioctl(fd, GntallocIoctls.IOCTL_GNTALLOC_DEALLOC_GREF, &op);
        }
        catch (ObjectDisposedException) { }
        finally
        {
            if (added) fd.DangerousRelease();
        }
    }
}
