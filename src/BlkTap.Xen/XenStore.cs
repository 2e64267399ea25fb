using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using System.Text;
using BlkTap.Linux.Internal;
using BlkTap.Linux.Interop;
using BlkTap.Xen.Internal;
using BlkTap.Xen.Interop;

namespace BlkTap.Xen;

/// <summary>
/// The real xenstore through Debian's libxenstore.so.4 (xenstored's socket, or /dev/xen/xenbus).
/// </summary>
/// <remarks>
/// Threading: every member is safe to call from any thread (libxenstore serialises requests on its handle).
/// Watch callbacks run on one watch thread owned by this object, one at a time, in the order xenstored sent
/// the events; they must not block. Like Xen, a watch fires once right after it is set (xenstored itself sends
/// that first event). A callback exception is caught and kept in <see cref="LastCallbackException"/>.
/// Errors other than "no such node" throw <see cref="XenInteropException"/> naming the call and path.
/// </remarks>
public sealed class XenStore : IXenStore, IDisposable
{
    private readonly SafeXenStoreHandle _handle;
    private readonly ConcurrentDictionary<string, WatchRegistration> _watches = new();
    private readonly object _threadLock = new();
    private WakePipe? _wake;
    private Thread? _watchThread;
    private volatile bool _stopping;
    private long _nextToken;
    private int _disposed;

    /// <summary>Opens a read-write connection to xenstore.</summary>
    /// <exception cref="XenNotAvailableException">Neither /dev/xen/xenbus nor the xenstored socket exists, or
    /// libxenstore.so.4 cannot be loaded.</exception>
    /// <exception cref="XenInteropException">xs_open failed.</exception>
    public XenStore() : this(readOnly: false) { }

    /// <summary>Opens a connection to xenstore, read-only when <paramref name="readOnly"/>.</summary>
    /// <exception cref="XenNotAvailableException">xenstore or libxenstore.so.4 is not available.</exception>
    /// <exception cref="XenInteropException">xs_open failed.</exception>
    public XenStore(bool readOnly)
    {
        XenPlatform.RequireXenStore();
        XenPlatform.RequireLibrary(XenLibraries.XenStore, "libxenstore4");
        _handle = XenStoreLib.Open(readOnly ? (nuint)XenStoreLib.XS_OPEN_READONLY : 0);
        if (_handle.IsInvalid)
        {
            var ex = XenErrno.Exception("xs_open");
            _handle.Dispose();
            throw ex;
        }
    }

    /// <summary>The last exception a watch callback threw, or null.</summary>
    public Exception? LastCallbackException { get; private set; }

    /// <summary>The error that stopped the watch thread (a failed poll or xs_check_watch), or null.</summary>
    public XenInteropException? WatchFailure { get; private set; }

    /// <inheritdoc />
    public string? Read(string path) => ReadCore(XenStoreLib.XBT_NULL, path);

    /// <inheritdoc />
    public void Write(string path, string value) => WriteCore(XenStoreLib.XBT_NULL, path, value);

    /// <inheritdoc />
    public bool Remove(string path) => RemoveCore(XenStoreLib.XBT_NULL, path);

    /// <inheritdoc />
    public IReadOnlyList<string> Directory(string path) => DirectoryCore(XenStoreLib.XBT_NULL, path);

    /// <summary>
    /// Sets the permission list of <paramref name="path"/>: the first entry is the owner and the access of every
    /// unlisted domain; later entries grant specific domains (xenstore.h xs_set_permissions).
    /// </summary>
    public void SetPermissions(string path, params ReadOnlySpan<XenStorePermission> permissions) =>
        SetPermissionsCore(XenStoreLib.XBT_NULL, path, permissions);

    /// <summary>
    /// Runs <paramref name="body"/> in a transaction and commits it; when xenstored reports a conflict (EAGAIN)
    /// the body runs again, up to <paramref name="maxAttempts"/> times. An exception from the body aborts the
    /// transaction and propagates.
    /// </summary>
    /// <exception cref="XenInteropException">A start or commit failed, or every attempt conflicted.</exception>
    public T Transact<T>(Func<XenStoreTransaction, T> body, int maxAttempts = 16)
    {
        ArgumentNullException.ThrowIfNull(body);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxAttempts, 1);
        for (int attempt = 1; ; attempt++)
        {
            uint id = XenStoreLib.TransactionStart(_handle);
            if (id == XenStoreLib.XBT_NULL) throw XenErrno.Exception("xs_transaction_start");
            T result;
            try
            {
                result = body(new XenStoreTransaction(this, id));
            }
            catch
            {
                XenStoreLib.TransactionEnd(_handle, id, abort: true);
                throw;
            }
            if (XenStoreLib.TransactionEnd(_handle, id, abort: false)) return result;
            int errno = Errno.Last;
            // NOTE: xenstore.h xs_transaction_end: "If this returns false and errno==EAGAIN, the transaction
            // should be retried" (another writer touched what we read).
            if (errno != Errno.EAGAIN || attempt >= maxAttempts)
                throw XenErrno.Exception("xs_transaction_end", errno, $"transaction (attempt {attempt} of {maxAttempts})");
        }
    }

    /// <inheritdoc />
    public IDisposable Watch(string path, Action<string> onChanged)
    {
        ValidateWatchPath(path);
        ArgumentNullException.ThrowIfNull(onChanged);
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        EnsureWatchThread();
        string token = "blktap-" + Interlocked.Increment(ref _nextToken).ToString(System.Globalization.CultureInfo.InvariantCulture);
        var registration = new WatchRegistration(this, path, token, onChanged);
        _watches[token] = registration;
        if (!XenStoreLib.Watch(_handle, path, token))
        {
            var ex = XenErrno.Exception("xs_watch", path);
            _watches.TryRemove(token, out _);
            throw ex;
        }
        return registration;
    }

    /// <summary>Stops the watch thread and closes the connection. Idempotent.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        _stopping = true;
        Thread? thread;
        lock (_threadLock) thread = _watchThread;
        // Join outside the lock: a callback running on the watch thread may itself be calling Watch.
        _wake?.Signal();
        if (thread != null && Thread.CurrentThread != thread) thread.Join();
        _watches.Clear();
        _handle.Dispose();
        _wake?.Dispose();
    }

    /// <summary>
    /// Reads <paramref name="relativePath"/> under this connection's own domain directory; null when it does not
    /// exist. Used where the domain id is not known yet (the <c>domid</c> node).
    /// </summary>
    /// <remarks>NOTE: xen docs/misc/xenstore.txt (&lt;path&gt;): a path without a leading '/' is relative to
    /// /local/domain/&lt;domid&gt; of the calling domain, and "the caller must be a domain (rather than connected via a
    /// socket)"; libxenstore passes it through unchanged. Over xenstored's Unix socket (only in the domain running
    /// xenstored, dom0) a daemon may refuse it: callers treat a failure as "no such node".</remarks>
    internal string? ReadRelative(string relativePath)
    {
        ArgumentNullException.ThrowIfNull(relativePath);
        if (relativePath.Length == 0 || relativePath[0] == '/' || relativePath[0] == '@' || relativePath.Contains('\0'))
            throw new ArgumentException($"xenstore path '{relativePath}' is not a relative path", nameof(relativePath));
        return ReadUnchecked(XenStoreLib.XBT_NULL, relativePath);
    }

    internal string? ReadCore(uint transaction, string path)
    {
        ValidatePath(path);
        return ReadUnchecked(transaction, path);
    }

    private unsafe string? ReadUnchecked(uint transaction, string path)
    {
        nint value = XenStoreLib.Read(_handle, transaction, path, out uint length);
        if (value == 0)
        {
            int errno = Errno.Last;
            if (errno == Errno.ENOENT) return null;
            throw XenErrno.Exception("xs_read", errno, path);
        }
        try { return Encoding.UTF8.GetString((byte*)value, checked((int)length)); }
        finally { Libc.Free(value); }
    }

    internal unsafe void WriteCore(uint transaction, string path, string value)
    {
        ValidatePath(path);
        ArgumentNullException.ThrowIfNull(value);
        int byteCount = Encoding.UTF8.GetByteCount(value);
        byte[]? rented = null;
        Span<byte> bytes = byteCount <= 256 ? stackalloc byte[256] : (rented = System.Buffers.ArrayPool<byte>.Shared.Rent(byteCount));
        try
        {
            int n = Encoding.UTF8.GetBytes(value, bytes);
            fixed (byte* p = bytes)
            {
                if (!XenStoreLib.Write(_handle, transaction, path, p, (uint)n))
                    throw XenErrno.Exception("xs_write", path);
            }
        }
        finally
        {
            if (rented != null) System.Buffers.ArrayPool<byte>.Shared.Return(rented);
        }
    }

    internal bool RemoveCore(uint transaction, string path)
    {
        ValidatePath(path);
        // NOTE: xenstored answers XS_RM of a missing node whose parent exists with success (tools/xenstore's
        // do_rm: "Not finding something is not an error"), so xs_rm cannot say whether the node was there: look
        // first (found by the lab's RequiresXen tests on Xen 4.17; the emulator always said false).
        if (ReadCore(transaction, path) == null) return false;
        if (XenStoreLib.Rm(_handle, transaction, path)) return true;
        int errno = Errno.Last;
        if (errno == Errno.ENOENT) return false;
        throw XenErrno.Exception("xs_rm", errno, path);
    }

    internal unsafe IReadOnlyList<string> DirectoryCore(uint transaction, string path)
    {
        ValidatePath(path);
        nint vector = XenStoreLib.Directory(_handle, transaction, path, out uint count);
        if (vector == 0)
        {
            int errno = Errno.Last;
            if (errno == Errno.ENOENT) return [];
            throw XenErrno.Exception("xs_directory", errno, path);
        }
        try
        {
            var names = new string[count];
            var entries = (nint*)vector;
            for (int i = 0; i < names.Length; i++) names[i] = Marshal.PtrToStringUTF8(entries[i]) ?? "";
            return names;
        }
        finally { Libc.Free(vector); }
    }

    internal unsafe void SetPermissionsCore(uint transaction, string path, ReadOnlySpan<XenStorePermission> permissions)
    {
        ValidatePath(path);
        if (permissions.IsEmpty) throw new ArgumentException("a permission list needs at least the owner entry", nameof(permissions));
        var native = permissions.Length <= 16 ? stackalloc XsPermissionsNative[permissions.Length] : new XsPermissionsNative[permissions.Length];
        for (int i = 0; i < permissions.Length; i++)
            native[i] = new XsPermissionsNative { Id = permissions[i].DomainId, Perms = (uint)permissions[i].Access };
        fixed (XsPermissionsNative* p = native)
        {
            if (!XenStoreLib.SetPermissions(_handle, transaction, path, p, (uint)native.Length))
                throw XenErrno.Exception("xs_set_permissions", path);
        }
    }

    private static void ValidatePath(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (path.Length == 0 || path[0] != '/')
            throw new ArgumentException($"xenstore path '{path}' is not absolute", nameof(path));
        if (path.Contains('\0'))
            throw new ArgumentException("xenstore path contains a NUL character", nameof(path));
    }

    private static void ValidateWatchPath(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        // NOTE: xenstore special watch paths start with '@' (@introduceDomain, @releaseDomain; docs/misc/xenstore.txt).
        if (path.Length > 0 && path[0] == '@' && !path.Contains('\0')) return;
        ValidatePath(path);
    }

    private void EnsureWatchThread()
    {
        lock (_threadLock)
        {
            if (_watchThread != null) return;
            ObjectDisposedException.ThrowIf(_stopping, this);
            _wake = new WakePipe();
            // NOTE: xs_fileno creates the library's watch pipe; it must exist before the first event is queued
            // so the poll below sees every event.
            int fd = XenStoreLib.Fileno(_handle);
            if (fd < 0) throw XenErrno.Exception("xs_fileno");
            _watchThread = new Thread(() => WatchLoop(fd)) { IsBackground = true, Name = "xenstore-watch" };
            _watchThread.Start();
        }
    }

    private unsafe void WatchLoop(int xsFd)
    {
        bool addedHandle = false, addedWake = false;
        var wake = _wake!;
        _handle.DangerousAddRef(ref addedHandle);
        wake.ReadEnd.DangerousAddRef(ref addedWake);
        try
        {
            Span<PollFd> fds = stackalloc PollFd[2];
            while (!_stopping)
            {
                fds[0] = new PollFd { Fd = xsFd, Events = Libc.POLLIN };
                fds[1] = new PollFd { Fd = wake.ReadEnd.Fd, Events = Libc.POLLIN };
                if (Libc.Poll(fds, -1) < 0) { WatchFailure = XenErrno.Exception("poll", "xenstore watch fd"); return; }
                if (fds[1].Revents != 0 || _stopping) return;
                if (fds[0].Revents == 0) continue;
                while (!_stopping)
                {
                    nint vector = XenStoreLib.CheckWatch(_handle);
                    if (vector == 0)
                    {
                        int errno = Errno.Last;
                        if (errno == Errno.EAGAIN) break;
                        WatchFailure = XenErrno.Exception("xs_check_watch", errno, null);
                        return;
                    }
                    string path, token;
                    try
                    {
                        var entries = (nint*)vector;
                        path = Marshal.PtrToStringUTF8(entries[XsWire.XS_WATCH_PATH]) ?? "";
                        token = Marshal.PtrToStringUTF8(entries[XsWire.XS_WATCH_TOKEN]) ?? "";
                    }
                    finally { Libc.Free(vector); }
                    // A token no longer registered is a stale event for a disposed watch: dropped.
                    if (_watches.TryGetValue(token, out var registration)) registration.Fire(path);
                }
            }
        }
        finally
        {
            if (addedWake) wake.ReadEnd.DangerousRelease();
            if (addedHandle) _handle.DangerousRelease();
        }
    }

    private sealed class WatchRegistration(XenStore store, string path, string token, Action<string> callback) : IDisposable
    {
        private int _disposed;

        public void Fire(string changedPath)
        {
            if (Volatile.Read(ref _disposed) != 0) return;
            try { callback(changedPath); }
            catch (Exception ex) { store.LastCallbackException = ex; }
        }

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
            store._watches.TryRemove(token, out _);
            if (Volatile.Read(ref store._disposed) == 0 && !store._handle.IsClosed)
                XenStoreLib.Unwatch(store._handle, path, token);
        }
    }
}
