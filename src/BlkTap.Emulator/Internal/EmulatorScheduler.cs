namespace BlkTap.Emulator.Internal;

/// <summary>
/// The common part of both schedulers: the callback queue's owner records faults and provides the
/// synchronization context under which callbacks run.
/// </summary>
/// <remarks>Threading: <see cref="Post"/> is callable from any thread; the run methods from one thread at a time.</remarks>
internal abstract class EmulatorScheduler : IDisposable
{
    private readonly object _faultGate = new();
    private readonly List<Exception> _faults = new();
    private int _reportedFaults;

    protected EmulatorScheduler()
    {
        Context = new SchedulerSynchronizationContext(this);
    }

    /// <summary>The context installed while callbacks run; its Post goes to this scheduler.</summary>
    public SynchronizationContext Context { get; }

    public abstract bool IsDeterministic { get; }

    /// <summary>True when the calling thread is running one of this scheduler's callbacks.</summary>
    public abstract bool IsCurrentThread { get; }

    public abstract void Post(Action callback);

    public abstract bool Step();

    public abstract void RunUntilIdle();

    public abstract bool RunUntil(Func<bool> condition);

    public abstract void Dispose();

    public IReadOnlyList<Exception> Faults
    {
        get { lock (_faultGate) return _faults.ToArray(); }
    }

    /// <summary>Runs one callback with the scheduler's context installed; a throw is recorded, not propagated.</summary>
    protected void Execute(Action callback)
    {
        var previous = SynchronizationContext.Current;
        SynchronizationContext.SetSynchronizationContext(Context);
        try
        {
            callback();
        }
        catch (Exception e)
        {
            lock (_faultGate) _faults.Add(e);
        }
        finally
        {
            SynchronizationContext.SetSynchronizationContext(previous);
        }
    }

    /// <summary>Throws the first fault not yet reported to a run method.</summary>
    protected void ThrowIfFaulted()
    {
        Exception? next = null;
        lock (_faultGate)
        {
            if (_reportedFaults < _faults.Count) next = _faults[_reportedFaults++];
        }
        if (next != null) throw new EmulatorFaultException(next);
    }
}

/// <summary>Posts continuations to the emulator's scheduler, so async code resumes there.</summary>
internal sealed class SchedulerSynchronizationContext : SynchronizationContext
{
    private readonly EmulatorScheduler _scheduler;

    public SchedulerSynchronizationContext(EmulatorScheduler scheduler) => _scheduler = scheduler;

    /// <summary>
    /// How completions created on this scheduler run their continuations: inline in deterministic mode
    /// (a continuation handed to the thread pool would post back from another thread after the
    /// scheduler may already have judged itself idle), asynchronously otherwise.
    /// </summary>
    public static TaskCreationOptions CompletionOptions =>
        Current is SchedulerSynchronizationContext { _scheduler.IsDeterministic: true } ? TaskCreationOptions.None : TaskCreationOptions.RunContinuationsAsynchronously;

    public override void Post(SendOrPostCallback d, object? state) => _scheduler.Post(() => d(state));

    public override void Send(SendOrPostCallback d, object? state)
    {
        if (_scheduler.IsCurrentThread) d(state);
        else throw new NotSupportedException("synchronous Send to the emulator's scheduler would block it; use Post");
    }

    public override SynchronizationContext CreateCopy() => this;
}
