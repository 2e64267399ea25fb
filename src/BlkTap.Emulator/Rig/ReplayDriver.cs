using System.Buffers;
using System.Diagnostics;
using System.Runtime.ExceptionServices;

namespace BlkTap.Emulator;

/// <summary>
/// Drives a sequence of requests (a trace) through the frontends of an <see cref="EmulatorRig"/>:
/// in sequence order, honouring submit times (<see cref="ReplayDriverOptions.TimeScale"/>), with at
/// most <see cref="ReplayDriverOptions.QueueDepth"/> requests in flight per frontend.
/// </summary>
/// <remarks>
/// <para>Ordering: requests are issued strictly in sequence order (a request that must wait holds
/// back the ones after it). A request that overlaps one in flight on the same disk, where either
/// modifies it, waits for that one to complete first, so the replay keeps the trace's data
/// dependencies and every read's expected content is exact (the original system may have
/// reordered such requests; a replay cannot know how).</para>
/// <para>Two ways to issue, one set of rules. Without timing (<see cref="ReplayDriverOptions.TimeScale"/> null, or
/// deterministic mode) and with <see cref="ReplayDriverOptions.BatchSubmission"/> (the default), the driver runs on the
/// emulator's scheduler and hands each frontend a batch through <see cref="BlkFront.SubmitBatch"/>: every request that
/// may go is staged, then one ring push and at most one notification per frontend, completions through a callback into
/// a fixed slot table (no task, no allocation per request). With timing, every request goes through the task-based calls
/// below. Both issue in the same order, skip the same requests, number writes the same and call the observer alike.</para>
/// <para>Operations: reads and writes go through <see cref="BlkFront.ReadAsync"/> and
/// <see cref="BlkFront.WriteAsync"/> (which split them into ring requests of at most 11 segments);
/// a barrier, or a flush carrying data, is a write followed by a flush (blkfront has no barrier
/// call); a flush is <see cref="BlkFront.FlushAsync"/>; a discard is <see cref="BlkFront.DiscardAsync"/>
/// when the disk offers <c>feature-discard</c>, otherwise skipped, as is a flush the disk does not
/// offer.</para>
/// <para>Threading: call <see cref="RunAsync"/> once. <see cref="Issued"/> and <see cref="Completed"/>
/// may be read from any thread (progress). Observer calls are serialized (see <see cref="IReplayObserver"/>): under the
/// driver's lock on the task path, on the emulator's scheduler on the batch path.</para>
/// </remarks>
public sealed partial class ReplayDriver
{
    private readonly EmulatorRig _rig;
    private readonly ReplayDriverOptions _options;
    private readonly IReplayObserver _observer;
    private readonly object _lock = new();
    private readonly List<InFlight> _inFlight = new();
    private readonly int[] _perFrontend;
    private TaskCompletionSource? _changed;
    private long _issued, _completed;
    private ulong _writeSequence;
    private long _start;

    private readonly record struct InFlight(long Index, int Frontend, ulong Sector, ulong End, bool Modifies);

    /// <summary>Creates a driver for the frontends of <paramref name="rig"/>.</summary>
    public ReplayDriver(EmulatorRig rig, ReplayDriverOptions options, IReplayObserver observer)
    {
        _rig = rig ?? throw new ArgumentNullException(nameof(rig));
        _options = options ?? throw new ArgumentNullException(nameof(options));
        _observer = observer ?? throw new ArgumentNullException(nameof(observer));
        if (options.QueueDepth < 1) throw new ArgumentOutOfRangeException(nameof(options), options.QueueDepth, "QueueDepth must be at least 1");
        if (options.TimeScale is { } s && (!double.IsFinite(s) || s < 0)) throw new ArgumentOutOfRangeException(nameof(options), s, "TimeScale must be a finite number ≥ 0");
        _perFrontend = new int[rig.Frontends.Count];
    }

    /// <summary>Requests issued so far.</summary>
    public long Issued => Interlocked.Read(ref _issued);
    /// <summary>Requests completed so far.</summary>
    public long Completed => Interlocked.Read(ref _completed);

    /// <summary>
    /// Issues every request of <paramref name="requests"/> and waits for all of them. In deterministic
    /// mode this runs on the emulator's scheduler (through <see cref="EmulatorRig.Execute"/>).
    /// </summary>
    /// <returns>The wall time from the first issue to the last completion.</returns>
    /// <exception cref="ArgumentOutOfRangeException">A request names a frontend the rig does not have (nothing after it is issued).</exception>
    /// <remarks>
    /// An exception thrown by the enumeration (a corrupt trace) stops issuing; the requests already in
    /// flight complete, then the exception is rethrown (<see cref="Issued"/> says how far it got).
    /// </remarks>
    public async Task<TimeSpan> RunAsync(IEnumerable<ReplayRequest> requests, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(requests);
        TimeSpan elapsed = default;
        await _rig.Execute(async () => elapsed = await RunCoreAsync(requests, cancellationToken));
        return elapsed;
    }

    private async Task<TimeSpan> RunCoreAsync(IEnumerable<ReplayRequest> requests, CancellationToken ct)
    {
        double? scale = _rig.Options.Deterministic ? null : _options.TimeScale;
        if (scale == null && _options.BatchSubmission) return await new BatchRun(this, requests, ct).RunAsync();
        _start = Stopwatch.GetTimestamp();
        ExceptionDispatchInfo? failure = null;
        try
        {
            long index = 0;
            foreach (var request in requests)
            {
                ct.ThrowIfCancellationRequested();
                if ((uint)request.Frontend >= (uint)_perFrontend.Length)
                    throw new ArgumentOutOfRangeException(nameof(requests), request.Frontend, $"request {index} names frontend {request.Frontend}; the rig has {_perFrontend.Length}");
                if (scale is { } sc)
                {
                    var due = TimeSpan.FromTicks((long)Math.Min(request.SubmitNs * sc / 100.0, TimeSpan.MaxValue.Ticks / 2));
                    // Sleep until about 1 ms before the due time, then yield the last stretch away
                    // (timer granularity is about 1 ms; never issue early).
                    while (due - Stopwatch.GetElapsedTime(_start) is var wait && wait > TimeSpan.Zero)
                    {
                        if (wait > TimeSpan.FromMilliseconds(2)) await Task.Delay(wait - TimeSpan.FromMilliseconds(1), ct);
                        else Thread.Yield();
                    }
                }
                await WaitForSlotAsync(request, index, ct);
                Issue(request, index);
                index++;
            }
        }
        catch (Exception ex)
        {
            failure = ExceptionDispatchInfo.Capture(ex);
        }
        await DrainAsync();
        var elapsed = Stopwatch.GetElapsedTime(_start);
        failure?.Throw();
        return elapsed;
    }

    private async Task WaitForSlotAsync(ReplayRequest request, long index, CancellationToken ct)
    {
        ulong end = request.Sector + Math.Max(1UL, request.SectorCount);
        while (true)
        {
            Task wait;
            lock (_lock)
            {
                if (_perFrontend[request.Frontend] < _options.QueueDepth && !Conflicts(request, end))
                {
                    _perFrontend[request.Frontend]++;
                    _inFlight.Add(new InFlight(index, request.Frontend, request.Sector, end, request.Modifies));
                    return;
                }
                _changed ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                wait = _changed.Task;
            }
            // NOTE: a plain await, not WaitAsync(ct): WaitAsync completes on the thread pool, which a
            // deterministic scheduler does not wait for (it would go idle). Cancellation is checked per request.
            await wait;
            ct.ThrowIfCancellationRequested();
        }
    }

    // Caller holds _lock.
    private bool Conflicts(ReplayRequest request, ulong end)
    {
        bool isFlushOnly = request.Operation == BlkifOperation.FlushDiskCache && request.Length == 0;
        if (isFlushOnly) return false;
        bool modifies = request.Modifies;
        foreach (var f in _inFlight)
        {
            if (!_options.SharedDisk && f.Frontend != request.Frontend) continue;
            if (!(modifies || f.Modifies)) continue;
            if (f.Sector < end && request.Sector < f.End && f.End > f.Sector) return true;
        }
        return false;
    }

    private void Issue(ReplayRequest request, long index)
    {
        var front = _rig.Frontends[request.Frontend];
        int length = checked((int)request.SectorCount * 512);
        byte[]? buffer = null;
        ulong sequence = 0;
        bool data = request.Operation == BlkifOperation.Read || request.WritesData;
        if (data && length > 0)
        {
            buffer = ArrayPool<byte>.Shared.Rent(length);
            if (request.WritesData)
            {
                lock (_lock)
                {
                    sequence = ++_writeSequence;
                    _observer.FillWrite(request, sequence, buffer.AsSpan(0, length));
                }
            }
        }
        Interlocked.Increment(ref _issued);
        long started = Stopwatch.GetTimestamp();
        _ = FinishAsync(request, index, sequence, started, buffer, length, IssueAsync(front, request, buffer, length));
    }

    private static async Task<(BlkifStatus Status, bool Skipped)> IssueAsync(BlkFront front, ReplayRequest r, byte[]? buffer, int length)
    {
        try
        {
            switch (r.Operation)
            {
                case BlkifOperation.Read:
                    if (length == 0) return (BlkifStatus.Okay, true);
                    return (await front.ReadAsync(r.Sector, buffer.AsMemory(0, length)), false);
                case BlkifOperation.Write:
                    if (length == 0) return (BlkifStatus.Okay, true);
                    return (await front.WriteAsync(r.Sector, buffer.AsMemory(0, length)), false);
                case BlkifOperation.WriteBarrier:
                case BlkifOperation.FlushDiskCache:
                    {
                        if (length > 0)
                        {
                            var written = await front.WriteAsync(r.Sector, buffer.AsMemory(0, length));
                            if (written != BlkifStatus.Okay) return (written, false);
                        }
                        if (!front.SupportsFlush) return (BlkifStatus.Okay, length == 0);
                        return (await front.FlushAsync(), false);
                    }
                case BlkifOperation.Discard:
                    if (!front.SupportsDiscard || r.SectorCount == 0) return (BlkifStatus.Okay, true);
                    return (await front.DiscardAsync(r.Sector, r.SectorCount), false);
                default:
                    return (BlkifStatus.NotSupported, true);
            }
        }
        catch (BlkFrontException)
        {
            return (BlkifStatus.Error, false);
        }
    }

    private async Task FinishAsync(ReplayRequest request, long index, ulong sequence, long started, byte[]? buffer, int length,
        Task<(BlkifStatus Status, bool Skipped)> operation)
    {
        var (status, skipped) = await operation;
        long latency = Stopwatch.GetTimestamp() - started;
        TaskCompletionSource? wake;
        lock (_lock)
        {
            for (int i = 0; i < _inFlight.Count; i++)
                if (_inFlight[i].Index == index) { _inFlight.RemoveAt(i); break; }
            _perFrontend[request.Frontend]--;
            var read = request.Operation == BlkifOperation.Read && status == BlkifStatus.Okay && buffer != null
                ? buffer.AsSpan(0, length) : ReadOnlySpan<byte>.Empty;
            try { _observer.OnCompleted(new ReplayCompletion(index, request, status, skipped, sequence, latency), read); }
            finally
            {
                Interlocked.Increment(ref _completed);
                wake = _changed;
                _changed = null;
            }
        }
        if (buffer != null) ArrayPool<byte>.Shared.Return(buffer);
        wake?.TrySetResult();
    }

    private async Task DrainAsync()
    {
        while (true)
        {
            Task wait;
            lock (_lock)
            {
                if (_inFlight.Count == 0) return;
                _changed ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                wait = _changed.Task;
            }
            await wait;
        }
    }
}
