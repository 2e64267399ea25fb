using System.Diagnostics;

namespace BlkTap;

/// <summary>What <see cref="BatchHelpers"/> runs: a batch's operations, by index.</summary>
internal interface IBatchOperations
{
    /// <summary>Runs operation <paramref name="op"/> (any thread; one thread per operation).</summary>
    void Run(int op);

    /// <summary>Operation <paramref name="op"/> threw <paramref name="error"/> (on the thread that ran it): it failed.</summary>
    void Fail(int op, Exception error);
}

/// <summary>
/// Threads that take part in running a batch's operations with the loop thread: the loop opens a range of operations
/// that may run in any order among themselves (<see cref="Run"/>), and it and every helper take the next one in turn
/// until none is left; the loop returns when all have run. A helper that finds nothing open spins for
/// <see cref="SpinTicks"/> (a replay's next batch comes sooner than that) and then sleeps until woken by the next range.
/// </summary>
/// <remarks>
/// Threading: <see cref="Run"/> and <see cref="Dispose"/> from one thread at a time (the loop's). The loop never waits
/// for a helper to wake: what no helper has taken, it runs itself, so a busy host makes a batch no slower than running
/// it alone, but for the wake-up's one system call. The helpers are background threads.
/// </remarks>
internal sealed class BatchHelpers : IDisposable
{
    // The open range, in one word so a claim is one compare-and-swap that cannot take an index of another range:
    // bits 63..32 the range's number, 31..16 its end, 15..0 the next index to take.
    private long _claim;
    private int _finishedByHelpers;
    private uint _range;
    private volatile bool _stopping;
    private readonly IBatchOperations _operations;
    private readonly Helper[] _helpers;

    /// <summary>How long a helper spins for the next range before it sleeps: 0.1 ms.</summary>
    private static readonly long SpinTicks = Stopwatch.Frequency / 10_000;

    /// <summary>Starts <paramref name="count"/> helper threads named after <paramref name="name"/>.</summary>
    public BatchHelpers(IBatchOperations operations, int count, string name)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        _operations = operations;
        _helpers = new Helper[count];
        for (int i = 0; i < count; i++)
        {
            var h = new Helper(this);
            _helpers[i] = h;
            h.Thread = new Thread(h.Main) { IsBackground = true, Name = $"{name} helper {i + 1}" };
            h.Thread.Start();
        }
    }

    /// <summary>How many threads help the loop.</summary>
    public int Count => _helpers.Length;

    /// <summary>Any thread: how many helpers are asleep (or about to be) rather than spinning for the next range (tests).</summary>
    public int Sleeping
    {
        get
        {
            int n = 0;
            foreach (var h in _helpers) n += Volatile.Read(ref h.Sleeping);
            return n;
        }
    }

    /// <summary>How many operations the helpers have run (statistics, tests).</summary>
    public long HelperOperations => Interlocked.Read(ref _helperOperations);
    private long _helperOperations;

    /// <summary>
    /// Loop thread: runs operations <paramref name="start"/> to <paramref name="end"/> (excluded; at most 65535), in
    /// any order and on any of the threads, and returns once every one has run. Never throws: an operation that throws
    /// goes to <see cref="IBatchOperations.Fail"/>.
    /// </summary>
    public void Run(int start, int end)
    {
        Debug.Assert(start >= 0 && start <= end && end <= ushort.MaxValue);
        if (end - start <= 1)
        {
            if (end > start) RunOne(start);
            return;
        }
        uint range = ++_range;
        Volatile.Write(ref _finishedByHelpers, 0);
        // A full fence: the batch's operations and the count above are seen by whoever takes from the range, and the
        // helpers' sleeping flags are read after the range is open (a helper sets its flag, then looks at the range).
        Interlocked.Exchange(ref _claim, ((long)range << 32) | ((long)end << 16) | (uint)start);
        foreach (var h in _helpers)
            if (Volatile.Read(ref h.Sleeping) != 0 && Interlocked.Exchange(ref h.Sleeping, 0) != 0) h.Wake.Release();
        int mine = 0;
        while (TryTake(range, out int op))
        {
            RunOne(op);
            mine++;
        }
        int theirs = end - start - mine;
        if (theirs == 0) return;
        // What the helpers took is running now (an operation is a system call or two): spin, yielding now and then.
        var spin = new SpinWait();
        while (Volatile.Read(ref _finishedByHelpers) != theirs) spin.SpinOnce(sleep1Threshold: -1);
    }

    /// <summary>Takes the next index of range <paramref name="range"/>; false when it is used up or another is open.</summary>
    private bool TryTake(uint range, out int op)
    {
        while (true)
        {
            long c = Volatile.Read(ref _claim);
            int next = (int)(c & 0xFFFF), end = (int)((c >> 16) & 0xFFFF);
            if ((uint)(c >> 32) != range || next >= end) { op = -1; return false; }
            if (Interlocked.CompareExchange(ref _claim, c + 1, c) == c) { op = next; return true; }
        }
    }

    private void RunOne(int op)
    {
        try { _operations.Run(op); }
        catch (Exception ex) { _operations.Fail(op, ex); } // nothing crosses to the loop or ends a helper
    }

    /// <summary>Stops the helpers and waits for them (the loop thread, with no range open).</summary>
    public void Dispose()
    {
        if (_stopping) return;
        _stopping = true;
        foreach (var h in _helpers)
            if (Interlocked.Exchange(ref h.Sleeping, 0) != 0) h.Wake.Release();
        foreach (var h in _helpers)
        {
            h.Thread?.Join();
            h.Wake.Dispose();
        }
    }

    private sealed class Helper(BatchHelpers owner)
    {
        public Thread? Thread;
        public int Sleeping;
        public readonly SemaphoreSlim Wake = new(0);

        public void Main()
        {
            uint seen = 0; // the range before the first: a helper that starts late still takes part in range 1
            long idleSince = Stopwatch.GetTimestamp();
            int spins = 0;
            while (!owner._stopping)
            {
                uint range = (uint)(Volatile.Read(ref owner._claim) >> 32);
                if (range != seen)
                {
                    seen = range;
                    while (owner.TryTake(range, out int op))
                    {
                        owner.RunOne(op);
                        Interlocked.Increment(ref owner._helperOperations); // counted before the loop may return
                        Interlocked.Increment(ref owner._finishedByHelpers);
                    }
                    idleSince = Stopwatch.GetTimestamp();
                    spins = 0;
                    continue;
                }
                if (Stopwatch.GetTimestamp() - idleSince < SpinTicks)
                {
                    Thread.SpinWait(20);
                    if (++spins % 64 == 0) Thread.Yield(); // let the host's other threads have this core now and then
                    continue;
                }
                // Sleep: say so, then look at the range once more (the loop opens a range, then reads the flag).
                Interlocked.Exchange(ref Sleeping, 1);
                if ((uint)(Volatile.Read(ref owner._claim) >> 32) == seen && !owner._stopping) Wake.Wait();
                else if (Interlocked.Exchange(ref Sleeping, 0) == 0) Wake.Wait(); // the loop took the flag: its release comes
                idleSince = Stopwatch.GetTimestamp();
                spins = 0;
            }
        }
    }
}
