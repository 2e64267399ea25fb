namespace BlkTap.Emulator.Internal;

/// <summary>A dedicated "hypervisor" thread that runs posted callbacks one at a time, in FIFO order.</summary>
/// <remarks>Threading: every member may be called from any thread; the waits refuse to run on the hypervisor thread itself.</remarks>
internal sealed class ThreadedScheduler : EmulatorScheduler
{
    private readonly object _gate = new();
    private readonly Queue<Action> _queue = new();
    private readonly Thread _thread;
    private readonly TimeSpan _timeout;
    private bool _running;   // a callback is executing
    private bool _stopping;

    public ThreadedScheduler(TimeSpan timeout)
    {
        _timeout = timeout;
        _thread = new Thread(Loop) { IsBackground = true, Name = "xen-emulator-hypervisor" };
        _thread.Start();
    }

    public override bool IsDeterministic => false;

    public override bool IsCurrentThread => Thread.CurrentThread == _thread;

    public override void Post(Action callback)
    {
        ArgumentNullException.ThrowIfNull(callback);
        lock (_gate)
        {
            if (_stopping) return;
            _queue.Enqueue(callback);
            if (_queue.Count == 1) Monitor.PulseAll(_gate);
        }
    }

    private void Loop()
    {
        while (true)
        {
            Action next;
            lock (_gate)
            {
                while (_queue.Count == 0 && !_stopping) Monitor.Wait(_gate);
                if (_stopping) return;
                next = _queue.Dequeue();
                _running = true;
            }
            Execute(next);
            lock (_gate)
            {
                _running = false;
                if (_queue.Count == 0) Monitor.PulseAll(_gate);
            }
        }
    }

    public override bool Step() =>
        throw new InvalidOperationException("Step is only available with SchedulerMode.Deterministic; the threaded scheduler runs by itself");

    public override void RunUntilIdle()
    {
        if (IsCurrentThread) throw new InvalidOperationException("RunUntilIdle cannot wait on the hypervisor thread itself");
        var deadline = DateTime.UtcNow + _timeout;
        lock (_gate)
        {
            while (_queue.Count > 0 || _running)
            {
                var left = deadline - DateTime.UtcNow;
                if (left <= TimeSpan.Zero) throw new TimeoutException($"the emulator did not go idle within {_timeout}");
                Monitor.Wait(_gate, left);
            }
        }
        ThrowIfFaulted();
    }

    public override bool RunUntil(Func<bool> condition)
    {
        ArgumentNullException.ThrowIfNull(condition);
        if (IsCurrentThread) throw new InvalidOperationException("RunUntil cannot wait on the hypervisor thread itself");
        var deadline = DateTime.UtcNow + _timeout;
        var spinner = new SpinWait();
        while (!condition())
        {
            ThrowIfFaulted();
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"the condition did not hold within {_timeout}");
            if (spinner.Count < 50) spinner.SpinOnce(); else Thread.Sleep(1);
        }
        ThrowIfFaulted();
        return true;
    }

    public override void Dispose()
    {
        lock (_gate)
        {
            if (_stopping) return;
            _stopping = true;
            _queue.Clear();
            Monitor.PulseAll(_gate);
        }
        if (!IsCurrentThread) _thread.Join(_timeout);
    }
}
