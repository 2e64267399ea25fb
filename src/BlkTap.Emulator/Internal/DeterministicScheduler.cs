namespace BlkTap.Emulator.Internal;

/// <summary>
/// A single-threaded scheduler driven by its caller: each step a seeded <see cref="Random"/> picks one
/// pending callback. The same seed and the same posts give the same order.
/// </summary>
/// <remarks>
/// Threading: Post may be called from any thread (but only posts from scheduled code are reproducible);
/// the run methods must be called from one thread at a time and never from inside a callback.
/// </remarks>
internal sealed class DeterministicScheduler : EmulatorScheduler
{
    private readonly object _gate = new();
    private readonly List<Action> _pending = new();
    private readonly Random _random;
    private readonly long _maxSteps;
    private int _runningThread;
    private bool _disposed;

    public DeterministicScheduler(int seed, long maxSteps)
    {
        _random = new Random(seed);
        _maxSteps = maxSteps;
    }

    public override bool IsDeterministic => true;

    public override bool IsCurrentThread => Volatile.Read(ref _runningThread) == Environment.CurrentManagedThreadId;

    public int PendingCount
    {
        get { lock (_gate) return _pending.Count; }
    }

    public override void Post(Action callback)
    {
        ArgumentNullException.ThrowIfNull(callback);
        lock (_gate)
        {
            if (_disposed) return;
            _pending.Add(callback);
        }
    }

    public override bool Step()
    {
        if (IsCurrentThread) throw new InvalidOperationException("Step, RunUntil and RunUntilIdle cannot be called from a callback the emulator is running");
        Action next;
        lock (_gate)
        {
            if (_pending.Count == 0) return false;
            int i = _random.Next(_pending.Count);
            int last = _pending.Count - 1;
            next = _pending[i];
            _pending[i] = _pending[last];
            _pending.RemoveAt(last);
        }
        Volatile.Write(ref _runningThread, Environment.CurrentManagedThreadId);
        try
        {
            Execute(next);
        }
        finally
        {
            Volatile.Write(ref _runningThread, 0);
        }
        ThrowIfFaulted();
        return true;
    }

    public override void RunUntilIdle()
    {
        long steps = 0;
        while (Step())
        {
            if (++steps > _maxSteps)
                throw new InvalidOperationException($"the emulator did not go idle within {_maxSteps} steps (a livelock?)");
        }
    }

    public override bool RunUntil(Func<bool> condition)
    {
        ArgumentNullException.ThrowIfNull(condition);
        long steps = 0;
        while (!condition())
        {
            if (!Step()) return condition();
            if (++steps > _maxSteps)
                throw new InvalidOperationException($"the condition did not hold within {_maxSteps} steps (a livelock?)");
        }
        return true;
    }

    public override void Dispose()
    {
        lock (_gate)
        {
            _disposed = true;
            _pending.Clear();
        }
    }
}
