using BlkTap.Loop;

namespace BlkTap.Storage;

/// <summary>
/// The worker of one storage file: a dedicated thread that runs, one at a time and in submission order, the file
/// operations an event loop could not do without waiting (a read missing the page cache, a write the file system
/// cannot promise not to block, every fsync and hole punch), and hands each back to the loop. What qemu does with its
/// thread pool: the loop tries the I/O without blocking (<see cref="INoWaitStorageFile"/>) and queues here only what
/// would block, so a slow disk stalls only the sessions on that file.
/// </summary>
/// <remarks>
/// <para>
/// Threading: <see cref="Submit"/> and <see cref="Busy"/> belong to the loop thread; <see cref="IStorageLaneWork.Execute"/>
/// runs on the lane's thread (named <c>blktap-io:NAME</c>, started at the first submit), <see cref="IStorageLaneWork.Complete"/>
/// back on the loop. Completions are batched: however many finish while the loop is busy or asleep cost one posted
/// item, hence at most one wake-up of the loop.
/// </para>
/// <para>
/// On an externally driven loop (<see cref="EventLoop.IsExternallyDriven"/>: the emulator's deterministic mode) there is
/// no thread: <see cref="Submit"/> runs the work inline and its completion still comes in a later pass.
/// </para>
/// <para>
/// Ordering: work runs strictly in submission order, and callers keep their whole file serial by handing everything to
/// the lane while it is <see cref="Busy"/> (a read after a queued write sees that write; a flush covers every write
/// submitted before it). <see cref="Dispose"/> (any thread but the lane's) runs what is queued, then stops the thread.
/// </para>
/// </remarks>
public sealed class StorageLane : IDisposable
{
    private readonly string _name;
    private readonly object _gate = new();
    private readonly Queue<IStorageLaneWork> _queue = new();
    private readonly Completions _completions;
    private Thread? _thread;
    private EventLoop? _loop;
    private bool _executing;
    private bool _stopping;
    private int _pending;

    /// <summary>A lane for the file called <paramref name="name"/> (names its thread).</summary>
    public StorageLane(string name)
    {
        _name = name;
        _completions = new Completions(this);
    }

    /// <summary>Loop thread: true while work submitted here has not been completed on the loop.</summary>
    public bool Busy => _pending > 0;

    /// <summary>Loop thread: how much submitted work has not been completed on the loop.</summary>
    public int Pending => _pending;

    /// <summary>
    /// Loop thread of <paramref name="loop"/>: queues <paramref name="work"/>; its completion is posted back to
    /// <paramref name="loop"/> (every submit of one lane must name the same loop).
    /// </summary>
    public void Submit(EventLoop loop, IStorageLaneWork work)
    {
        ArgumentNullException.ThrowIfNull(loop);
        ArgumentNullException.ThrowIfNull(work);
        _loop ??= loop;
        if (!ReferenceEquals(_loop, loop)) throw new InvalidOperationException($"storage lane '{_name}' serves one event loop");
        _pending++;
        if (loop.IsExternallyDriven)
        {
            // NOTE: the emulator's deterministic scheduler knows nothing of other threads (it would see the run go idle
            // while the worker still ran): there the work runs here, inline, and completes in a later pass as usual.
            work.Execute();
            _completions.Add(work);
            return;
        }
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_stopping, this);
            _queue.Enqueue(work);
            if (_thread == null)
            {
                _thread = new Thread(Work) { IsBackground = true, Name = $"blktap-io:{Path.GetFileName(_name)}" };
                _thread.Start();
            }
            else Monitor.Pulse(_gate);
        }
    }

    /// <summary>
    /// Any thread but the lane's: waits until every piece of work submitted so far has run (its completion may still be
    /// on its way to the loop). Used before a synchronous flush or close.
    /// </summary>
    public void Drain()
    {
        lock (_gate)
        {
            while (_queue.Count > 0 || _executing) Monitor.Wait(_gate);
        }
    }

    private void Work()
    {
        while (true)
        {
            IStorageLaneWork work;
            lock (_gate)
            {
                while (_queue.Count == 0)
                {
                    if (_stopping) return;
                    Monitor.Wait(_gate);
                }
                work = _queue.Dequeue();
                _executing = true;
            }
            try { work.Execute(); }
            finally
            {
                _completions.Add(work);
                lock (_gate)
                {
                    _executing = false;
                    if (_queue.Count == 0) Monitor.PulseAll(_gate); // Drain
                }
            }
        }
    }

    /// <summary>Runs what is queued, then stops the lane's thread. Any thread but the lane's.</summary>
    public void Dispose()
    {
        Thread? thread;
        lock (_gate)
        {
            if (_stopping) return;
            _stopping = true;
            thread = _thread;
            Monitor.PulseAll(_gate);
        }
        thread?.Join();
    }

    /// <summary>Finished work on its way back to the loop: one posted item per batch.</summary>
    private sealed class Completions(StorageLane lane) : ILoopWorkHandler
    {
        private readonly object _gate = new();
        private List<IStorageLaneWork> _done = new();
        private List<IStorageLaneWork> _running = new();
        private bool _posted;

        /// <summary>Worker thread.</summary>
        public void Add(IStorageLaneWork work)
        {
            bool post;
            lock (_gate)
            {
                _done.Add(work);
                post = !_posted;
                _posted = true;
            }
            if (post) lane._loop!.Post(this, null, 0);
        }

        /// <summary>Loop thread: completes every piece of work finished so far, in order.</summary>
        public void RunOnLoop(object? state, int code)
        {
            List<IStorageLaneWork> batch;
            lock (_gate)
            {
                batch = _done;
                _done = _running;
                _running = batch;
                _posted = false;
            }
            Exception? failure = null;
            for (int i = 0; i < batch.Count; i++)
            {
                lane._pending--;
                try { batch[i].Complete(); }
                catch (Exception ex) { failure ??= ex; } // the rest still completes; the loop reports the first
            }
            batch.Clear();
            if (failure != null) throw new InvalidOperationException($"storage lane '{lane._name}': a completion threw", failure);
        }
    }
}
