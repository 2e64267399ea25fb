using System.Diagnostics;

namespace BlkTap.Examples;

/// <summary>
/// One background thread that resumes stolen requests at their due time (a priority queue by
/// Stopwatch timestamp), so the tap loop never sleeps.
/// </summary>
/// <remarks>Threading: <see cref="Schedule"/> from any thread; <see cref="Dispose"/> resumes everything still pending.</remarks>
internal sealed class DelayScheduler : IDisposable
{
    private readonly object _lock = new();
    private readonly PriorityQueue<TapRequest, long> _queue = new();
    private Thread? _thread;
    private bool _stopped;

    /// <summary>Number of requests waiting.</summary>
    public int Pending { get { lock (_lock) return _queue.Count; } }

    /// <summary>Resumes <paramref name="request"/> with <see cref="TapRuntime.Resume"/> at <paramref name="dueTimestamp"/>.</summary>
    public void Schedule(TapRequest request, long dueTimestamp)
    {
        lock (_lock)
        {
            if (_stopped) { ResumeWhenStolen(request); return; }
            _queue.Enqueue(request, dueTimestamp);
            if (_thread == null)
            {
                _thread = new Thread(Run) { IsBackground = true, Name = "delay-tap timer" };
                _thread.Start();
            }
            Monitor.Pulse(_lock);
        }
    }

    private void Run()
    {
        while (true)
        {
            TapRequest? due = null;
            lock (_lock)
            {
                while (due == null)
                {
                    if (_stopped) return;
                    if (!_queue.TryPeek(out var r, out long at)) { Monitor.Wait(_lock); continue; }
                    long now = Stopwatch.GetTimestamp();
                    if (at <= now) { due = _queue.Dequeue(); break; }
                    var wait = Stopwatch.GetElapsedTime(now, at);
                    // Monitor.Wait rounds to milliseconds; wait at least 1 ms and re-check.
                    Monitor.Wait(_lock, Math.Max(1, (int)Math.Ceiling(wait.TotalMilliseconds)));
                }
            }
            ResumeWhenStolen(due);
        }
    }

    /// <summary>
    /// Resumes a request. TapRuntime.Resume accepts it even when the timer fires before the stealing hook
    /// has returned (the runtime then continues the chain as soon as the hook returns Stolen).
    /// </summary>
    private static void ResumeWhenStolen(TapRequest request)
    {
        var runtime = request.Runtime;
        if (!runtime.Resume(request))
        {
            var what = request.ToString();
            runtime.Post(() => runtime.Report(TapDiagnosticLevel.Error, null, $"delay: could not resume {what}: it is not stolen"));
        }
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        List<TapRequest> rest = new();
        lock (_lock)
        {
            _stopped = true;
            while (_queue.TryDequeue(out var r, out _)) rest.Add(r);
            Monitor.PulseAll(_lock);
        }
        foreach (var r in rest) ResumeWhenStolen(r);
    }
}
