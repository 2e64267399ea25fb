using BlkTap.Chains;
using BlkTap.Storage;

namespace BlkTap.Examples;

/// <summary>
/// <c>img</c>: terminates on a raw image file or block device (blkimg of the 2005 Xen blktap, Xen's
/// <c>tools/blktap/README</c>). One image per session: the image identifier given at attach (xenstore
/// <c>params</c>) if the session has one and no <c>path</c> is set, otherwise <c>path</c>. Capacity is
/// the file's size.
/// </summary>
public sealed class ImgTapFactory : ITapFactory
{
    /// <inheritdoc/>
    public string Name => "img";
    /// <inheritdoc/>
    public string Description => "raw image file or block device (the 2005 blktap's blkimg)";
    /// <inheritdoc/>
    public bool IsTerminator => true;
    /// <inheritdoc/>
    public IReadOnlyList<TapOptionInfo> Options { get; } =
    [
        new("path", "image file; without it each session's image identifier (params) is the path"),
        new("readonly", "answer writes with ERROR (default false)"),
        new("uring", "on a file in memory (tmpfs, ramfs), start each loop pass's reads and writes with one io_uring_enter (default false: one pread/pwrite each, back to back at the end of the pass; true pays off only on a busy host, docs/architecture.md)"),
        new("map", "on a file in memory (tmpfs, ramfs) without uring, copy reads and writes of pages that hold data through a shared mapping of the file instead of a pread/pwrite each (default false; pays off when the same pages are touched again and again, as in a replay over a small disk; over a large random working set each copy misses the TLB and can cost more than the system call it saves, docs/architecture.md; holes are still read and written with system calls, so nothing is allocated by a read and a full file system is an error; a file another process shortens while it is mapped ends this process with SIGBUS)"),
        new("threads", $"on a file in memory without uring, how many threads run each loop pass's reads and writes, 1 to {FileBlockDevice.MaxThreads} (default 1: the loop's own; from 2 on, helper threads on other cores take part, each spinning 0.1 ms for the next pass before it sleeps: for replays and hosts with idle cores)"),
    ];

    /// <inheritdoc/>
    public ITap Create(TapSpec spec, TapContext context)
    {
        var path = spec.Get("path");
        var storage = TapStorage.Of(context);
        if (path != null && !storage.FileExists(path)) throw new ChainSpecException($"tap 'img': image file '{path}' does not exist");
        long threads = spec.GetInt64("threads", 1);
        if (threads < 1 || threads > FileBlockDevice.MaxThreads)
            throw new ChainSpecException($"tap 'img': option 'threads={threads}' is out of range (1 to {FileBlockDevice.MaxThreads})");
        bool uring = spec.GetBool("uring", false), map = spec.GetBool("map", false);
        if (uring && map) throw new ChainSpecException("tap 'img': options 'map' and 'uring' exclude each other (a mapped file is not served through io_uring)");
        return new ImgTap(path, spec.GetBool("readonly", false), storage, uring, (int)threads, map);
    }
}

/// <summary>
/// The <c>img</c> tap. Hooks run on the loop thread. Each image is a <see cref="FileBlockDevice"/>: reads and writes
/// that need no waiting are done on the loop: page-cache hits through <c>preadv2(RWF_NOWAIT)</c> at once, and on a file
/// in memory each pass's reads and writes gathered and run back to back at the end of the pass, one pread or pwrite
/// each (with option <c>uring</c>, queued on an io_uring and started with one system call; with option <c>map</c>, pages
/// that hold data copied through a shared mapping of the file);
/// the rest (cache misses, writes the file system cannot promise not to block, flushes, FUA writes, barriers,
/// discards) goes to the image's own worker thread and is answered from there, so a slow image stalls only its own
/// sessions (docs/architecture.md, "Storage I/O: what runs where"; see <c>aio</c> for a thread-pool terminator).
/// </summary>
public sealed class ImgTap : TapBase, IRequestHook, IControlHook
{
    private readonly string? _path;
    private readonly bool _readOnly;
    private readonly IStorageProvider _storage;
    private readonly bool _uring;
    private readonly int _threads;
    private readonly bool _map;
    private readonly BlockDeviceHook _hook;
    private readonly Dictionary<string, (FileBlockDevice Device, int Users)> _open = new(StringComparer.Ordinal);

    /// <summary>
    /// Creates the tap; its images are opened on <paramref name="storage"/> (null: the OS's files). With
    /// <paramref name="uring"/> a file that offers a submission queue (io_uring on tmpfs, ramfs) is served through it
    /// (off by default: on an idle host the kernel's hand-off to its io-wq workers costs more than it saves). With
    /// <paramref name="threads"/> above 1 (1 to <see cref="FileBlockDevice.MaxThreads"/>), helper threads take part in
    /// each pass's reads and writes of a file in memory (<see cref="FileBlockDevice"/>'s in-order batch). With
    /// <paramref name="map"/> (not with <paramref name="uring"/>) a file in memory is mapped and its pages that hold data
    /// are read and written by copying (<see cref="IMappableStorageFile"/>).
    /// </summary>
    public ImgTap(string? path, bool readOnly, IStorageProvider? storage = null, bool uring = false, int threads = 1, bool map = false) : base("img")
    {
        if (uring && map) throw new ArgumentException("options map and uring exclude each other", nameof(map));
        _map = map;
        ArgumentOutOfRangeException.ThrowIfLessThan(threads, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(threads, FileBlockDevice.MaxThreads);
        _threads = threads;
        _uring = uring;
        _path = path;
        _readOnly = readOnly;
        _storage = TapStorage.OrDefault(storage);
        _hook = new BlockDeviceHook(Open);
    }

    private FileBlockDevice? Open(TapSession session)
    {
        var path = _path ?? session.ImageId;
        if (string.IsNullOrEmpty(path))
        {
            session.Runtime.Report(TapDiagnosticLevel.Error, session, "img: no path option and no image identifier: the disk has no image");
            return null;
        }
        if (_open.TryGetValue(path, out var e)) { _open[path] = (e.Device, e.Users + 1); return e.Device; }
        try
        {
            // NOTE: discard punches a hole (fallocate PUNCH_HOLE|KEEP_SIZE); a file system that cannot answers EOPNOTSUPP.
            var file = _storage.Open(path, _readOnly ? StorageOpenOptions.None : StorageOpenOptions.Writable);
            var d = new FileBlockDevice(file, discard: true, queued: _uring, threads: _threads, mapped: _map);
            _open[path] = (d, 1);
            return d;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            session.Runtime.Report(TapDiagnosticLevel.Error, session, $"img: cannot open image '{path}': {ex.Message}");
            return null;
        }
    }

    /// <summary>Loop thread: how many open images serve their reads and writes through a submission queue (io_uring).</summary>
    public int QueuedImages => CountImages(static d => d.Queued);

    /// <summary>
    /// Loop thread: how many open images gather each loop pass's reads and writes and run them at its end (files in
    /// memory: in order, one system call each, or through io_uring with option <c>uring</c>).
    /// </summary>
    public int BatchedImages => CountImages(static d => d.Batched);

    /// <summary>Loop thread: how many open images are mapped (option <c>map</c>).</summary>
    public int MappedImages => CountImages(static d => d.Mapped);

    /// <summary>Loop thread: how many reads and writes the open images have copied through their mappings (option <c>map</c>).</summary>
    public long MappedOperations => SumImages(static d => d.MappedOperations);

    /// <summary>Loop thread: how many reads and writes the open images' helper threads have run (option <c>threads</c>).</summary>
    public long HelperOperations => SumImages(static d => d.HelperOperations);

    private int CountImages(Func<FileBlockDevice, bool> test) => _open.Values.Count(e => test(e.Device));

    private long SumImages(Func<FileBlockDevice, long> value) => _open.Values.Sum(e => value(e.Device));

    /// <inheritdoc/>
    public HookResult OnRequest(TapRequest request)
    {
        if (_hook.DeviceOf(request.Session) is FileBlockDevice device) return device.Submit(request);
        request.Status = BlkifStatus.Error;
        return HookResult.Respond;
    }

    /// <inheritdoc/>
    public void OnControl(ControlEvent controlEvent)
    {
        FileBlockDevice? device = null;
        if (controlEvent.Kind == ControlEventKind.Disconnect && controlEvent.Session.Items.TryGetValue(_hook, out var d)) device = (FileBlockDevice)d;
        _hook.OnControl(controlEvent);
        if (device != null && _open.TryGetValue(device.Path, out var e))
        {
            // NOTE: the last user: what its worker still holds runs first (blocking the loop at this close), then the fsync.
            if (e.Users <= 1) { _open.Remove(device.Path); device.Drain(); device.Flush(); device.Dispose(); }
            else _open[device.Path] = (e.Device, e.Users - 1);
        }
    }

    /// <inheritdoc/>
    public override void Dispose()
    {
        foreach (var e in _open.Values) { e.Device.Drain(); e.Device.Flush(); e.Device.Dispose(); }
        _open.Clear();
        base.Dispose();
    }
}
