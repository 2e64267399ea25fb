using System.Diagnostics.Metrics;

namespace BlkTap.Metrics;

/// <summary>
/// The runtime's instruments, on the <see cref="System.Diagnostics.Metrics.Meter"/> named <see cref="MeterName"/>:
/// every <see cref="TapRuntime"/> records into them, tagged with the runtime's name (<see cref="TapTag"/>, the tap
/// program: <c>nbd</c>, <c>shm</c>, <c>xen</c>), the session's name (<see cref="SessionTag"/>) and, for requests,
/// the operation (<see cref="OperationTag"/>). Read them with <c>dotnet-counters monitor --counters BlkTap -p PID</c>,
/// any <see cref="MeterListener"/>, or a serve verb's <c>--metrics URL</c> (Prometheus).
/// </summary>
/// <remarks>
/// Threading: the instruments are thread-safe. The runtime records on its loop thread, with tag arrays cached per
/// session (<see cref="SessionMetrics"/>): recording allocates nothing, and with no listener it is a check of
/// <see cref="Instrument.Enabled"/>. The counters count what <see cref="SessionStatistics"/> counts, from the moment a
/// session is attached.
/// </remarks>
public static class TapMetrics
{
    /// <summary>The meter's name (<c>dotnet-counters --counters BlkTap</c>).</summary>
    public const string MeterName = "BlkTap";

    /// <summary>Tag: the runtime's name (<see cref="TapRuntimeOptions.Name"/>).</summary>
    public const string TapTag = "blktap.tap";

    /// <summary>Tag: the session's name (<see cref="TapSession.Name"/>).</summary>
    public const string SessionTag = "blktap.session";

    /// <summary>Tag: the request's operation: <c>read</c>, <c>write</c>, <c>flush</c>, <c>discard</c> or <c>other</c>.</summary>
    public const string OperationTag = "blktap.operation";

    /// <summary>The meter every runtime records into.</summary>
    public static Meter Meter { get; } = new(MeterName, typeof(TapMetrics).Assembly.GetName().Version?.ToString());

    /// <summary>Requests answered (tags: tap, session, operation). Prometheus: <c>blktap_requests_total</c>.</summary>
    public static Counter<long> Requests { get; } = Meter.CreateCounter<long>("blktap.requests", "{request}", "Requests answered");

    /// <summary>Requests answered with a status other than OKAY (tags: tap, session, operation).</summary>
    public static Counter<long> Errors { get; } = Meter.CreateCounter<long>("blktap.errors", "{request}", "Requests answered with an error status");

    /// <summary>Malformed requests answered without reaching the hooks (tags: tap, session).</summary>
    public static Counter<long> Rejected { get; } = Meter.CreateCounter<long>("blktap.rejected", "{request}", "Malformed requests rejected before the hooks");

    /// <summary>Bytes the frontends read (tags: tap, session).</summary>
    public static Counter<long> BytesRead { get; } = Meter.CreateCounter<long>("blktap.read", "By", "Bytes read by the frontends");

    /// <summary>Bytes the frontends wrote (tags: tap, session).</summary>
    public static Counter<long> BytesWritten { get; } = Meter.CreateCounter<long>("blktap.written", "By", "Bytes written by the frontends");

    /// <summary>
    /// Seconds from the loop pass that took a request to its answer, through every hook and the terminator (tags: tap,
    /// session, operation).
    /// </summary>
    public static Histogram<double> Duration { get; } = Meter.CreateHistogram<double>("blktap.request.duration", "s", "Request latency inside the tap");

    /// <summary>Sessions attached and not yet closed (tag: tap).</summary>
    public static UpDownCounter<long> ActiveSessions { get; } = Meter.CreateUpDownCounter<long>("blktap.sessions", "{session}", "Sessions open");

    internal static int OperationIndex(BlkifOperation operation) => operation switch
    {
        BlkifOperation.Read => 0,
        BlkifOperation.Write => 1,
        BlkifOperation.FlushDiskCache or BlkifOperation.WriteBarrier => 2,
        BlkifOperation.Discard => 3,
        _ => 4,
    };

    internal static readonly string[] OperationNames = ["read", "write", "flush", "discard", "other"];
}
