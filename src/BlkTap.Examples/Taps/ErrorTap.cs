using BlkTap.Chains;

namespace BlkTap.Examples;

/// <summary>
/// <c>error</c>: fails a random fraction of requests (like nbdkit's error filter). For each request
/// whose operation is targeted, with probability <c>rate</c> it answers at once with the chosen status
/// and the request goes no further (a failed write never reaches the disk); otherwise it passes.
/// </summary>
public sealed class ErrorTapFactory : ITapFactory
{
    /// <inheritdoc/>
    public string Name => "error";
    /// <inheritdoc/>
    public string Description => "fail a random fraction of requests (like nbdkit's error filter)";
    /// <inheritdoc/>
    public bool IsTerminator => false;
    /// <inheritdoc/>
    public IReadOnlyList<TapOptionInfo> Options { get; } =
    [
        new("rate", "probability 0..1 that a targeted request fails (default 0.1)"),
        new("ops", "operations to target, separated by '+': read+write+flush+discard (default all)"),
        new("status", "error or eopnotsupp (default error)"),
        new("seed", "random seed (default: the run's seed)"),
    ];

    /// <inheritdoc/>
    public ITap Create(TapSpec spec, TapContext context)
    {
        double rate = spec.GetDouble("rate", 0.1);
        if (rate is < 0 or > 1) throw new ChainSpecException($"tap 'error': rate={spec.Get("rate")} must be between 0 and 1");
        var ops = OpsFilter.Parse("error", spec.Get("ops"));
        var statusText = spec.Get("status") ?? "error";
        var status = statusText.ToLowerInvariant() switch
        {
            "error" or "eio" => BlkifStatus.Error,
            "eopnotsupp" or "notsupported" => BlkifStatus.NotSupported,
            _ => throw new ChainSpecException($"tap 'error': status={statusText} is not 'error' or 'eopnotsupp'"),
        };
        long seed = spec.GetInt64("seed", context.Seed);
        if (seed is < int.MinValue or > int.MaxValue) throw new ChainSpecException($"tap 'error': seed={seed} does not fit in 32 bits");
        return new ErrorTap(rate, ops, status, (int)seed);
    }
}

/// <summary>The <c>error</c> tap.</summary>
/// <remarks>
/// Threading: hooks run on the loop thread only (the random sequence is therefore deterministic for a
/// given request order). <see cref="Failed"/> and <see cref="Seen"/> may be read from any thread.
/// </remarks>
public sealed class ErrorTap : TapBase, IRequestHook
{
    private readonly double _rate;
    private readonly OpsFilter _ops;
    private readonly BlkifStatus _status;
    private readonly Random _random;
    private long _failed, _seen;

    /// <summary>Creates the tap failing targeted <paramref name="operations"/> (null: all) with probability <paramref name="rate"/>.</summary>
    public ErrorTap(double rate, IReadOnlyCollection<BlkifOperation>? operations, BlkifStatus status, int seed)
        : this(rate, OpsFromList(operations), status, seed) { }

    internal ErrorTap(double rate, OpsFilter ops, BlkifStatus status, int seed) : base("error")
    {
        if (!(rate >= 0 && rate <= 1)) throw new ArgumentOutOfRangeException(nameof(rate), rate, "rate must be between 0 and 1");
        if (status == BlkifStatus.Okay) throw new ArgumentException("the injected status must be a failure", nameof(status));
        _rate = rate;
        _ops = ops;
        _status = status;
        _random = new Random(seed);
    }

    /// <summary>Targeted requests seen.</summary>
    public long Seen => Interlocked.Read(ref _seen);
    /// <summary>Requests failed.</summary>
    public long Failed => Interlocked.Read(ref _failed);

    /// <inheritdoc/>
    public HookResult OnRequest(TapRequest request)
    {
        if (!_ops.Contains(request.Operation)) return HookResult.Pass;
        Interlocked.Increment(ref _seen);
        // NextDouble is in [0, 1): rate 0 never fails, rate 1 always fails.
        if (_random.NextDouble() >= _rate) return HookResult.Pass;
        Interlocked.Increment(ref _failed);
        request.Status = _status;
        return HookResult.Respond;
    }

    private static OpsFilter OpsFromList(IReadOnlyCollection<BlkifOperation>? ops)
    {
        if (ops == null) return OpsFilter.All;
        var names = new List<string>();
        foreach (var op in ops)
        {
            names.Add(op switch
            {
                BlkifOperation.Read => "read",
                BlkifOperation.Write or BlkifOperation.WriteBarrier => "write",
                BlkifOperation.FlushDiskCache => "flush",
                BlkifOperation.Discard => "discard",
                _ => throw new ArgumentException($"operation {op} cannot be targeted", nameof(ops)),
            });
        }
        return OpsFilter.Parse("error", string.Join('+', names));
    }
}
