using System.Diagnostics;

namespace BlkTap.Metrics;

/// <summary>
/// One session's tag arrays for <see cref="TapMetrics"/>, made once when the session is attached so that recording a
/// request allocates nothing.
/// </summary>
/// <remarks>Threading: created and used on the runtime's loop thread; the arrays are never written after construction.</remarks>
internal sealed class SessionMetrics
{
    private readonly KeyValuePair<string, object?>[] _session;
    private readonly KeyValuePair<string, object?>[][] _perOperation;

    public SessionMetrics(string tap, string session)
    {
        _session = [new(TapMetrics.TapTag, tap), new(TapMetrics.SessionTag, session)];
        _perOperation = new KeyValuePair<string, object?>[TapMetrics.OperationNames.Length][];
        for (int i = 0; i < _perOperation.Length; i++)
            _perOperation[i] = [new(TapMetrics.TapTag, tap), new(TapMetrics.SessionTag, session), new(TapMetrics.OperationTag, TapMetrics.OperationNames[i])];
        TapTags = [new(TapMetrics.TapTag, tap)];
    }

    /// <summary>The tap's tag alone (sessions open).</summary>
    public KeyValuePair<string, object?>[] TapTags { get; }

    /// <summary>A request answered: its count, error, bytes and latency.</summary>
    public void Completed(TapRequest request, bool ok)
    {
        var tags = _perOperation[TapMetrics.OperationIndex(request.Operation)];
        TapMetrics.Requests.Add(1, tags);
        if (!ok) TapMetrics.Errors.Add(1, tags);
        else if (request.Operation == BlkifOperation.Read) TapMetrics.BytesRead.Add(request.ByteCount, _session);
        else if (request.HasData) TapMetrics.BytesWritten.Add(request.ByteCount, _session);
        if (TapMetrics.Duration.Enabled)
            TapMetrics.Duration.Record(Stopwatch.GetElapsedTime(request.SubmitTimestamp).TotalSeconds, tags);
    }

    /// <summary>A malformed request rejected before the hooks.</summary>
    public void Rejected() => TapMetrics.Rejected.Add(1, _session);
}
