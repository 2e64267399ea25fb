using BlkTap.Chains;
using BlkTap.Examples.Internal;
using BlkTap.Storage;

namespace BlkTap.Examples;

/// <summary>
/// The <c>aio</c> tap. Steals every request and runs it as a thread-pool work item doing positional
/// I/O directly on the request's segment memory; the response is injected from that thread. At most
/// <c>depth</c> operations run at once; more wait in FIFO order. A WRITE_BARRIER waits until
/// everything before it has finished and holds back everything after it until it is done.
/// </summary>
/// <remarks>
/// Threading: hooks run on the loop thread; the scheduling state (queue, counters) is loop-only. I/O
/// and <see cref="TapRuntime.InjectResponse"/> happen on pool threads. Completions come back through
/// the response hook on the loop, which starts queued work. Files open at attach and close at the
/// last disconnect of their path (or at <see cref="Dispose"/>).
/// </remarks>
public sealed class AioTap : TapBase, IRequestHook, IResponseHook, IControlHook
{
    private readonly string? _path;
    private readonly bool _readOnly;
    private readonly IStorageProvider _storage;
    private readonly AioOperation[] _ops;
    private readonly Stack<int> _freeOps;
    private readonly Queue<TapRequest> _waiting = new();
    private readonly Dictionary<string, AioFile> _files = new(StringComparer.Ordinal);
    private readonly Action _pump;
    private int _running;
    private bool _barrierRunning;
    private bool _pumpPosted;

    /// <summary>Creates the tap; its images are opened on <paramref name="storage"/> (null: the OS's files).</summary>
    public AioTap(string? path, int depth, bool readOnly, IStorageProvider? storage = null) : base("aio")
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(depth, 1);
        _path = path;
        _readOnly = readOnly;
        _storage = TapStorage.OrDefault(storage);
        _ops = new AioOperation[depth];
        _freeOps = new Stack<int>(depth);
        for (int i = depth - 1; i >= 0; i--) { _ops[i] = new AioOperation { Index = i }; _freeOps.Push(i); }
        _pump = () => { _pumpPosted = false; Pump(); };
    }

    /// <summary>Most operations in flight at once.</summary>
    public int Depth => _ops.Length;

    /// <inheritdoc/>
    public void OnControl(ControlEvent e)
    {
        var session = e.Session;
        if (e.Kind == ControlEventKind.Attach)
        {
            var path = _path ?? session.ImageId;
            if (string.IsNullOrEmpty(path)) { session.Runtime.Report(TapDiagnosticLevel.Error, session, "aio: no path option and no image identifier: the disk has no image"); return; }
            if (!_files.TryGetValue(path, out var f))
            {
                try { f = new AioFile(_storage.Open(path, _readOnly ? StorageOpenOptions.None : StorageOpenOptions.Writable)); }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
                {
                    session.Runtime.Report(TapDiagnosticLevel.Error, session, $"aio: cannot open image '{path}': {ex.Message}");
                    return;
                }
                _files[path] = f;
            }
            f.Users++;
            session.Items[this] = f;
            session.Sectors = f.Sectors;
            session.ReadOnly = _readOnly;
            session.SupportsFlush = true;
            session.SupportsDiscard = false;
        }
        else if (e.Kind == ControlEventKind.Disconnect && session.Items.TryGetValue(this, out var o))
        {
            session.Items.Remove(this);
            var f = (AioFile)o;
            if (--f.Users == 0 && _files.Remove(f.Path))
            {
                try { f.Sync(); } catch (IOException) { }
                // Operations still running keep the handle alive (SafeHandle reference counting) and fail cleanly.
                f.Dispose();
            }
        }
    }

    /// <inheritdoc/>
    public HookResult OnRequest(TapRequest r)
    {
        if (!r.Session.Items.TryGetValue(this, out var o)) { r.Status = BlkifStatus.Error; return HookResult.Respond; }
        // The file's own bounds: a tap above may report a larger disk than the file holds, and positional I/O
        // past the end would read zeros or grow the image (the terminator contract suite found it).
        if (r.SectorCount > 0 && (r.Sector >= ((AioFile)o).Sectors || r.SectorCount > ((AioFile)o).Sectors - r.Sector))
        {
            r.Status = BlkifStatus.Error;
            return HookResult.Respond;
        }
        switch (r.Operation)
        {
            case BlkifOperation.Read:
            case BlkifOperation.FlushDiskCache:
                break;
            case BlkifOperation.Write:
            case BlkifOperation.WriteBarrier:
                if (((AioFile)o).ReadOnly) { r.Status = BlkifStatus.Error; return HookResult.Respond; }
                break;
            default:
                r.Status = BlkifStatus.NotSupported;
                return HookResult.Respond;
        }
        _waiting.Enqueue(r);
        // Start it after this hook returns: the runtime marks the request stolen only then, and an
        // injection before that would be refused.
        if (!_pumpPosted) { _pumpPosted = true; r.Runtime.Post(_pump); }
        return HookResult.Stolen;
    }

    /// <inheritdoc/>
    public void OnResponse(TapRequest r)
    {
        if (!r.TryGetTag(this, out var tag) || tag <= 0) return;
        var op = _ops[(int)tag - 1];
        if (r.Operation == BlkifOperation.WriteBarrier) _barrierRunning = false;
        op.Request = null;
        op.File = null;
        _freeOps.Push(op.Index);
        _running--;
        r.SetTag(this, 0);
        Pump();
    }

    private void Pump()
    {
        while (_waiting.Count > 0 && _freeOps.Count > 0 && !_barrierRunning)
        {
            var r = _waiting.Peek();
            bool barrier = r.Operation == BlkifOperation.WriteBarrier;
            if (barrier && _running > 0) return; // drain first
            _waiting.Dequeue();
            if (!r.Session.Items.TryGetValue(this, out var f))
            {
                r.Runtime.InjectResponse(r, BlkifStatus.Error);
                continue;
            }
            int i = _freeOps.Pop();
            var op = _ops[i];
            op.Request = r;
            op.File = (AioFile)f;
            r.SetTag(this, i + 1);
            _running++;
            if (barrier) _barrierRunning = true;
            ThreadPool.UnsafeQueueUserWorkItem(op, preferLocal: false);
        }
    }

    /// <summary>Closes every file still open.</summary>
    public override void Dispose()
    {
        foreach (var f in _files.Values) { try { f.Sync(); } catch (IOException) { } f.Dispose(); }
        _files.Clear();
        base.Dispose();
    }
}
