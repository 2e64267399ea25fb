using HdrHistogram;

namespace BlkTap.Trace;

/// <summary>
/// What a replay measured and checked, per operation (<see cref="OperationNames"/>): completed requests, bytes,
/// failures, skipped requests and a latency histogram; and, for a verified replay, every read checked against the
/// trace's own earlier writes (<see cref="ReplayVerifier"/>: one model when the frontends share a disk, one per
/// frontend otherwise). The first ten errors and mismatches are kept as one-line descriptions.
/// </summary>
/// <remarks>
/// <para>A request counts as an error when it fails where the traced run saw OKAY; a request answered
/// EOPNOTSUPP counts as skipped. Successful writes and discards update the model only when reads are verified (nothing
/// else reads it).</para>
/// <para>Threading: not thread-safe. Call <see cref="Record"/> serially (a replay driver calls its observer under its
/// lock); read the figures once the replay is over.</para>
/// </remarks>
public sealed class ReplayStatistics
{
    private const int FirstKept = 10;
    private static readonly string[] Names = ["read", "write", "barrier", "flush", "discard"];

    private readonly bool _verify;
    private readonly bool _shared;
    private readonly ReplayVerifier[] _models;
    private readonly LongHistogram[] _latency = new LongHistogram[Names.Length];
    private readonly long[] _completed = new long[Names.Length], _bytes = new long[Names.Length], _failed = new long[Names.Length], _skipped = new long[Names.Length];
    private readonly List<string> _firstMismatches = new();
    private readonly List<string> _firstErrors = new();

    /// <summary>Creates empty statistics.</summary>
    /// <param name="verify">Check every successful read against the model.</param>
    /// <param name="sharedDisk">The frontends share one disk (<see cref="ReplayPlan.SharedDisk"/>).</param>
    /// <param name="initiallyZero">Never-written sectors must read as zeros (<see cref="ReplayPlan.InitiallyZero"/>).</param>
    /// <param name="frontends">Number of frontends (one model each when the disk is not shared).</param>
    public ReplayStatistics(bool verify, bool sharedDisk, bool initiallyZero, int frontends)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(frontends, 1);
        _verify = verify;
        _shared = sharedDisk;
        _models = new ReplayVerifier[sharedDisk ? 1 : frontends];
        for (int i = 0; i < _models.Length; i++) _models[i] = new ReplayVerifier(initiallyZero);
        for (int i = 0; i < _latency.Length; i++) _latency[i] = new LongHistogram(3_600_000_000_000L, 3);
    }

    /// <summary>The operations counted, in index order: read, write, barrier, flush, discard.</summary>
    public static IReadOnlyList<string> OperationNames => Names;

    /// <summary>The index of <paramref name="operation"/> in <see cref="OperationNames"/> (anything else counts as a discard).</summary>
    public static int OperationIndex(BlkifOperation operation) => operation switch
    {
        BlkifOperation.Read => 0,
        BlkifOperation.Write => 1,
        BlkifOperation.WriteBarrier => 2,
        BlkifOperation.FlushDiskCache => 3,
        _ => 4,
    };

    /// <summary>Requests completed (not skipped), per operation.</summary>
    public IReadOnlyList<long> Completed => _completed;
    /// <summary>Bytes of the completed requests, per operation.</summary>
    public IReadOnlyList<long> Bytes => _bytes;
    /// <summary>Completed requests whose status was not OKAY, per operation.</summary>
    public IReadOnlyList<long> Failed => _failed;
    /// <summary>Requests skipped or answered EOPNOTSUPP, per operation.</summary>
    public IReadOnlyList<long> Skipped => _skipped;
    /// <summary>Requests that failed where the traced run saw OKAY.</summary>
    public long Errors { get; private set; }
    /// <summary>Verified reads that did not return what the model expects.</summary>
    public long Mismatches { get; private set; }
    /// <summary>Reads checked against the model.</summary>
    public long ReadsChecked { get; private set; }
    /// <summary>The first ten mismatching reads, one line each.</summary>
    public IReadOnlyList<string> FirstMismatches => _firstMismatches;
    /// <summary>The first ten errors, one line each.</summary>
    public IReadOnlyList<string> FirstErrors => _firstErrors;
    /// <summary>True when no request failed unexpectedly and every verified read matched.</summary>
    public bool Passed => Errors == 0 && Mismatches == 0;

    /// <summary>True when reads are checked against the trace's own writes (the verify argument of the constructor).</summary>
    public bool Verifies => _verify;

    /// <summary>The latency in microseconds at <paramref name="percentile"/> (0-100) of the operation at <paramref name="operation"/>; 0 when none completed.</summary>
    public double LatencyUs(int operation, double percentile)
    {
        var h = _latency[operation];
        return h.TotalCount == 0 ? 0 : h.GetValueAtPercentile(percentile) / 1000.0;
    }

    /// <summary>The largest latency in microseconds of the operation at <paramref name="operation"/>; 0 when none completed.</summary>
    public double MaxLatencyUs(int operation)
    {
        var h = _latency[operation];
        return h.TotalCount == 0 ? 0 : h.GetMaxValue() / 1000.0;
    }

    /// <summary>
    /// A copy of the latency histogram (nanoseconds) of the operation at <paramref name="operation"/>, for pictures and
    /// HdrHistogram logs.
    /// </summary>
    public HistogramBase LatencyHistogram(int operation) => _latency[operation].Copy();

    /// <summary>Counts one completed request; <paramref name="readData"/> is what a successful read returned (empty otherwise).</summary>
    public void Record(in ReplayOutcome outcome, ReadOnlySpan<byte> readData)
    {
        int op = OperationIndex(outcome.Operation);
        if (outcome.Skipped || outcome.Status == BlkifStatus.NotSupported) { _skipped[op]++; return; }
        _completed[op]++;
        _bytes[op] += outcome.Length;
        _latency[op].RecordValue(Math.Max(0, outcome.LatencyNs));
        if (outcome.Status != BlkifStatus.Okay)
        {
            _failed[op]++;
            if (outcome.ExpectedStatus == BlkifStatus.Okay)
            {
                Errors++;
                if (_firstErrors.Count < FirstKept)
                    _firstErrors.Add($"request #{outcome.Index} ({Names[op]} sector {outcome.Sector}+{outcome.SectorCount} on frontend {outcome.Frontend}): {outcome.Status}");
            }
            return;
        }
        // Without verification nothing reads the model: keeping it would cost a lookup per sector written.
        if (!_verify) return;
        var model = _models[_shared ? 0 : outcome.Frontend];
        if (outcome.WriteSequence != 0) model.RecordWrite(outcome.Sector, outcome.SectorCount, outcome.WriteSequence);
        else if (outcome.Operation == BlkifOperation.Discard) model.RecordDiscard(outcome.Sector, outcome.SectorCount);
        else if (_verify && outcome.Operation == BlkifOperation.Read && !readData.IsEmpty)
        {
            ReadsChecked++;
            if (model.Verify(outcome.Sector, readData) is { } m)
            {
                Mismatches++;
                if (_firstMismatches.Count < FirstKept)
                    _firstMismatches.Add($"request #{outcome.Index} (read sector {outcome.Sector}+{outcome.SectorCount} on frontend {outcome.Frontend}): {m}");
            }
        }
    }
}
