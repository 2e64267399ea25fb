namespace BlkTap.Emulator.Internal;

/// <summary>
/// One registered watch: its own FIFO of fired paths, drained one event per scheduled callback so
/// events of one watch stay in order (as xenstored delivers them) while interleaving with everything
/// else the scheduler runs.
/// </summary>
/// <remarks>Threading: fields guarded by the store's lock; the callback runs on the scheduler without it.</remarks>
internal sealed class XenStoreWatch : IDisposable
{
    private readonly EmulatedXenStore _store;
    private readonly EmulatorScheduler _scheduler;
    private readonly Action<string> _callback;
    private readonly Queue<string> _events = new();
    private readonly Action _drain;
    private bool _scheduled;
    private volatile bool _active = true;

    public XenStoreWatch(EmulatedXenStore store, EmulatorScheduler scheduler, string path, Action<string> callback)
    {
        _store = store;
        _scheduler = scheduler;
        Path = path;
        _callback = callback;
        _drain = Drain;
    }

    public string Path { get; }

    public bool Active => _active;

    /// <summary>Queues an event. Store lock held.</summary>
    public void FireLocked(string changedPath)
    {
        if (!_active) return;
        _events.Enqueue(changedPath);
        if (!_scheduled)
        {
            _scheduled = true;
            _scheduler.Post(_drain);
        }
    }

    private void Drain()
    {
        string path;
        lock (_store.Gate)
        {
            if (!_active || _events.Count == 0)
            {
                _scheduled = false;
                return;
            }
            path = _events.Dequeue();
            if (_events.Count > 0) _scheduler.Post(_drain);
            else _scheduled = false;
        }
        _callback(path);
    }

    public void Dispose()
    {
        _active = false;
        _store.RemoveWatch(this);
    }
}
