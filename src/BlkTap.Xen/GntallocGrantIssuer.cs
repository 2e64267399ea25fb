using System.Buffers;
using System.Runtime.InteropServices;
using BlkTap.Linux.Interop;
using BlkTap.Xen.Internal;
using BlkTap.Xen.Interop;

namespace BlkTap.Xen;

/// <summary>
/// Grants pages of this domain to another domain through the Linux gntalloc device (<c>/dev/xen/gntalloc</c>,
/// module xen-gntalloc): IOCTL_GNTALLOC_ALLOC_GREF allocates zeroed kernel pages, grants each and reserves an mmap
/// offset; mmap of that offset maps the pages here; munmap plus IOCTL_GNTALLOC_DEALLOC_GREF release them.
/// </summary>
/// <remarks>
/// Threading: every member is safe to call from any thread concurrently. The device is opened once, on the first
/// <see cref="Grant"/> (or by <see cref="Open"/>); a failed open is retried by the next Grant. Failures (no device,
/// the module's grant limit reached, no such domain) are returned as null plus a reason; only caller bugs (a page
/// count out of range, use after <see cref="Dispose"/>) throw. Pages granted stay valid after the issuer is
/// disposed, until they are disposed themselves.
/// </remarks>
public sealed class GntallocGrantIssuer : IGrantIssuer, IDisposable
{
    /// <summary>The most pages one <see cref="Grant"/> call accepts (also gntalloc's default limit for all allocations together).</summary>
    public const int MaxPagesPerGrant = 1024;

    private const int StackPages = 32;
    private static readonly string NotFound =
        $"{GntallocIoctls.DevicePath} not found: load the {GntallocIoctls.Module} kernel module (modprobe {GntallocIoctls.Module}) in a Xen domain";
    private readonly object _openLock = new();
    private SafeFdHandle? _fd;
    private volatile bool _disposed;

    /// <summary>Creates an issuer that opens <c>/dev/xen/gntalloc</c> on first use. Never throws.</summary>
    public GntallocGrantIssuer() { }

    /// <summary>Creates an issuer and opens <c>/dev/xen/gntalloc</c> now.</summary>
    /// <exception cref="XenNotAvailableException">The device does not exist (not a Xen domain, or xen-gntalloc not
    /// loaded).</exception>
    /// <exception cref="XenInteropException">open(2) failed (e.g. EACCES: not root).</exception>
    public static GntallocGrantIssuer Open()
    {
        XenPlatform.RequireDevice(GntallocIoctls.DevicePath, GntallocIoctls.Module);
        var issuer = new GntallocGrantIssuer();
        if (issuer.AcquireFd(out _, out int errno) is null) throw XenErrno.Exception("open", errno, GntallocIoctls.DevicePath);
        return issuer;
    }

    /// <inheritdoc />
    /// <remarks>
    /// The local mapping is always readable and writable; <paramref name="writable"/> only decides what
    /// <paramref name="remoteDomain"/> may do. The pages are contiguous here, 4096 bytes each.
    /// </remarks>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="pageCount"/> is not in
    /// 1..<see cref="MaxPagesPerGrant"/>.</exception>
    /// <exception cref="ObjectDisposedException">The issuer was disposed.</exception>
    public unsafe IGrantedPages? Grant(ushort remoteDomain, int pageCount, bool writable, out string? error)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(pageCount, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(pageCount, MaxPagesPerGrant);
        ObjectDisposedException.ThrowIf(_disposed, this);
        // NOTE: gntalloc.c advances the mmap offset by count * PAGE_SIZE and maps one kernel page per grant, so the
        // 4096-byte grant pages are contiguous here only when the kernel page is 4 KiB (x86_64; arm64 4K kernels).
        if (Environment.SystemPageSize != GrantTableConstants.PageSize)
        {
            error = $"{GntallocIoctls.DevicePath} needs 4096-byte kernel pages; this kernel uses {Environment.SystemPageSize}";
            return null;
        }
        var fd = AcquireFd(out error, out _);
        if (fd is null) return null;

        bool added = false;
        try
        {
            fd.DangerousAddRef(ref added);
        }
        catch (ObjectDisposedException)
        {
            throw new ObjectDisposedException(nameof(GntallocGrantIssuer));
        }
        try
        {
            return GrantCore(fd, remoteDomain, pageCount, writable, out error);
        }
        finally
        {
            if (added) fd.DangerousRelease();
        }
    }

    /// <summary>Closes the device. Pages still granted stay mapped and granted until they are disposed. Idempotent.</summary>
    public void Dispose()
    {
        lock (_openLock)
        {
            _disposed = true;
            _fd?.Dispose();
        }
    }

    private SafeFdHandle? AcquireFd(out string? error, out int errno)
    {
        error = null;
        errno = 0;
        var fd = Volatile.Read(ref _fd);
        if (fd != null) return fd;
        lock (_openLock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_fd != null) return _fd;
            if (!File.Exists(GntallocIoctls.DevicePath))
            {
                errno = Errno.ENOENT;
                error = NotFound;
                return null;
            }
            fd = Libc.Open(GntallocIoctls.DevicePath, Libc.O_RDWR);
            if (fd.IsInvalid)
            {
                errno = Errno.Last;
                fd.Dispose();
                error = errno == Errno.ENOENT || errno == Errno.ENODEV ? NotFound : Errno.Message("open", errno, GntallocIoctls.DevicePath);
                return null;
            }
            Volatile.Write(ref _fd, fd);
            return fd;
        }
    }

    private static unsafe IGrantedPages? GrantCore(SafeFdHandle fd, ushort remoteDomain, int pageCount, bool writable, out string? error)
    {
        // NOTE: gntalloc.h struct ioctl_gntalloc_alloc_gref ends in gref_ids[1] but the kernel writes `count` ids there
        // and copies sizeof(struct) (24) back first: the argument is max(24, offsetof(gref_ids) + count * 4) bytes.
        int idsOffset = (int)Marshal.OffsetOf<IoctlGntallocAllocGref>(nameof(IoctlGntallocAllocGref.GrefIds));
        int size = Math.Max(sizeof(IoctlGntallocAllocGref), idsOffset + pageCount * sizeof(uint));
        byte[]? rented = null;
        Span<byte> arg = pageCount <= StackPages
            ? stackalloc byte[idsOffset + StackPages * sizeof(uint)]
            : (rented = ArrayPool<byte>.Shared.Rent(size));
        arg = arg[..size];
        arg.Clear();
        try
        {
            ref var header = ref MemoryMarshal.AsRef<IoctlGntallocAllocGref>(arg);
            header.Domid = remoteDomain;
            header.Flags = writable ? GntallocIoctls.GNTALLOC_FLAG_WRITABLE : (ushort)0;
            header.Count = (uint)pageCount;

            int rc;
            fixed (byte* p = arg) rc = Libc.Ioctl(fd, GntallocIoctls.IOCTL_GNTALLOC_ALLOC_GREF, p);
            if (rc != 0)
            {
                int errno = Errno.Last;
                error = Errno.Message("ioctl(IOCTL_GNTALLOC_ALLOC_GREF)", errno, $"{pageCount} pages for domain {remoteDomain}")
                    + (errno == Errno.ENOSPC ? $"; the {GntallocIoctls.Module} module's grant limit (parameter 'limit') is reached" : "");
                return null;
            }
            ulong index = header.Index;
            var refs = MemoryMarshal.Cast<byte, uint>(arg.Slice(idsOffset, pageCount * sizeof(uint))).ToArray();

            // NOTE: gntalloc.c refuses a private mapping (EINVAL, "Mapping must be shared"); the offset is the byte
            // offset returned in `index`.
            var length = (nuint)pageCount * GrantTableConstants.PageSize;
            var map = Libc.Mmap(length, Libc.PROT_READ | Libc.PROT_WRITE, Libc.MAP_SHARED, fd, (long)index);
            if (map.IsInvalid)
            {
                int errno = Errno.Last;
                map.Dispose();
                GntallocGrantedPages.Deallocate(fd, index, (uint)pageCount);
                error = Errno.Message("mmap", errno, $"{GntallocIoctls.DevicePath} offset {index} ({pageCount} pages)");
                return null;
            }
            error = null;
            return new GntallocGrantedPages(fd, map, index, refs);
        }
        finally
        {
            if (rented != null) ArrayPool<byte>.Shared.Return(rented);
        }
    }
}
