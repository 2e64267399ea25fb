using System.Buffers;
using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using BlkTap.Linux.Interop;
using BlkTap.Xen.Internal;
using BlkTap.Xen.Interop;

namespace BlkTap.Xen;

/// <summary>
/// Maps a frontend domain's granted pages into this process through the Linux gntdev device
/// (<c>/dev/xen/gntdev</c>): IOCTL_GNTDEV_MAP_GRANT_REF reserves an mmap offset, mmap of that offset performs the
/// grant map, munmap plus IOCTL_GNTDEV_UNMAP_GRANT_REF release it.
/// </summary>
/// <remarks>
/// Threading: every member is safe to call from any thread concurrently. Failures of a map are
/// <see cref="GrantStatus"/> values, never exceptions; only caller bugs (mismatched span lengths) throw.
/// The pages of one mapping are contiguous; <see cref="Map"/> still reports one address per page.
/// </remarks>
public sealed class GntdevGrantMapper : IGrantMapper, IDisposable
{
    /// <summary>The most pages one <see cref="Map"/> call accepts (a blkif ring or an indirect request needs far fewer).</summary>
    public const int MaxPagesPerMap = 1024;

    private const int StackRefs = 32;
    private readonly SafeFdHandle _fd;
    private readonly ConcurrentDictionary<long, Mapping> _mappings = new();
    private long _nextHandle;

    /// <summary>Opens <c>/dev/xen/gntdev</c>.</summary>
    /// <exception cref="XenNotAvailableException">The device does not exist (not a Xen dom0, or xen-gntdev not loaded).</exception>
    /// <exception cref="XenInteropException">open(2) failed (e.g. EACCES: not root).</exception>
    public GntdevGrantMapper()
    {
        XenPlatform.RequireDevice(GntdevIoctls.DevicePath, "xen-gntdev");
        _fd = Libc.Open(GntdevIoctls.DevicePath, Libc.O_RDWR);
        if (_fd.IsInvalid)
        {
            var ex = XenErrno.Exception("open", GntdevIoctls.DevicePath);
            _fd.Dispose();
            throw ex;
        }
    }

    /// <summary>The number of live mappings (diagnostics).</summary>
    public int MappingCount => _mappings.Count;

    /// <inheritdoc />
    /// <exception cref="ArgumentException"><paramref name="pages"/> is not as long as <paramref name="refs"/>, or
    /// refs is empty or longer than <see cref="MaxPagesPerMap"/>.</exception>
    public unsafe GrantStatus Map(ushort domid, ReadOnlySpan<uint> refs, bool writable, Span<nint> pages, out long handle)
    {
        handle = 0;
        if (refs.Length == 0 || refs.Length > MaxPagesPerMap)
            throw new ArgumentException($"a map takes 1..{MaxPagesPerMap} grant references, not {refs.Length}", nameof(refs));
        if (pages.Length != refs.Length)
            throw new ArgumentException($"pages has {pages.Length} entries but refs has {refs.Length}", nameof(pages));
        ObjectDisposedException.ThrowIf(_fd.IsClosed, this);

        // NOTE: gntdev.h struct ioctl_gntdev_map_grant_ref ends in refs[1] but the kernel reads `count` entries:
        // the argument is offsetof(refs) + count * sizeof(struct ioctl_gntdev_grant_ref) bytes.
        int refsOffset = (int)Marshal.OffsetOf<IoctlGntdevMapGrantRef>(nameof(IoctlGntdevMapGrantRef.Refs));
        int refSize = Unsafe.SizeOf<IoctlGntdevGrantRef>();
        int size = refsOffset + refs.Length * refSize;
        byte[]? rented = null;
        Span<byte> arg = refs.Length <= StackRefs
            ? stackalloc byte[refsOffset + StackRefs * refSize]
            : (rented = ArrayPool<byte>.Shared.Rent(size));
        arg = arg[..size];
        arg.Clear();
        try
        {
            ref var header = ref MemoryMarshal.AsRef<IoctlGntdevMapGrantRef>(arg);
            header.Count = (uint)refs.Length;
            var entries = MemoryMarshal.Cast<byte, IoctlGntdevGrantRef>(arg[refsOffset..]);
            for (int i = 0; i < refs.Length; i++)
            {
                entries[i].Domid = domid;
                entries[i].Ref = refs[i];
            }

            int rc;
            fixed (byte* p = arg) rc = Libc.Ioctl(_fd, GntdevIoctls.IOCTL_GNTDEV_MAP_GRANT_REF, p);
            if (rc != 0) return GrantStatus.Failed; // ENOMEM / ENOSPC: out of gntdev slots (limit module parameter)
            ulong index = header.Index;

            var length = (nuint)refs.Length * GrantTableConstants.PageSize;
            int prot = Libc.PROT_READ | (writable ? Libc.PROT_WRITE : 0);
            // NOTE: gntdev performs the actual GNTTABOP_map_grant_ref inside mmap(); any failed grant makes mmap
            // fail with EINVAL without saying which (Linux drivers/xen/gntdev.c), so we diagnose afterwards.
            var map = Libc.Mmap(length, prot, Libc.MAP_SHARED, _fd, (long)index);
            if (map.IsInvalid)
            {
                map.Dispose();
                ReleaseIndex(index, (uint)refs.Length);
                return Diagnose(domid, refs, writable);
            }

            for (int i = 0; i < pages.Length; i++) pages[i] = map.Address + i * GrantTableConstants.PageSize;
            handle = Interlocked.Increment(ref _nextHandle);
            _mappings[handle] = new Mapping(map, index, (uint)refs.Length);
            return GrantStatus.Okay;
        }
        finally
        {
            if (rented != null) ArrayPool<byte>.Shared.Return(rented);
        }
    }

    /// <inheritdoc />
    public void Unmap(long handle)
    {
        if (!_mappings.TryRemove(handle, out var mapping)) return;
        mapping.Pages.Dispose();
        // Closing the device releases every reservation itself, so a concurrent Dispose is harmless here.
        try { ReleaseIndex(mapping.Index, mapping.Count); }
        catch (ObjectDisposedException) { }
    }

    /// <summary>Unmaps every mapping and closes the device.</summary>
    public void Dispose()
    {
        foreach (var key in _mappings.Keys) Unmap(key);
        _fd.Dispose();
    }

    private unsafe void ReleaseIndex(ulong index, uint count)
    {
        var unmap = new IoctlGntdevUnmapGrantRef { Index = index, Count = count };
        Libc.Ioctl(_fd, GntdevIoctls.IOCTL_GNTDEV_UNMAP_GRANT_REF, &unmap);
    }

    /// <summary>
    /// Finds why a map failed by copying one byte out of each grant with IOCTL_GNTDEV_GRANT_COPY, whose per-segment
    /// GNTST_* status names the reason. Never writes to the guest.
    /// </summary>
    private unsafe GrantStatus Diagnose(ushort domid, ReadOnlySpan<uint> refs, bool writable)
    {
        byte scratch = 0;
        for (int i = 0; i < refs.Length; i++)
        {
            var segment = new GntdevGrantCopySegment
            {
                Len = 1,
                Flags = GrantTableConstants.GNTCOPY_source_gref,
            };
            segment.Source.Ref = refs[i];
            segment.Source.Domid = domid;
            segment.Dest.Virt = (nint)(&scratch);
            var copy = new IoctlGntdevGrantCopy { Count = 1, Segments = (nint)(&segment) };
            if (Libc.Ioctl(_fd, GntdevIoctls.IOCTL_GNTDEV_GRANT_COPY, &copy) != 0) return GrantStatus.Failed;
            if (segment.Status != GrantTableConstants.GNTST_okay)
            {
                // A read that is refused means the grant is not ours; ReadOnly only makes sense for a write.
                var status = GrantStatusMapping.FromGntst(segment.Status);
                return status == GrantStatus.ReadOnly ? GrantStatus.NotGranted : status;
            }
        }
        // Every grant is readable: a writable map failing then means a read-only grant.
        return writable ? GrantStatus.ReadOnly : GrantStatus.Failed;
    }

    private sealed record Mapping(SafeMmapHandle Pages, ulong Index, uint Count);
}
