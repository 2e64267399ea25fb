using System.Diagnostics;
using BlkTap.Chains;

namespace BlkTap.Examples;

/// <summary>
/// <c>delay</c>: adds latency to requests: a fixed <c>ms=N</c> or uniform random <c>min=N,max=N</c>
/// milliseconds. The request is stolen and resumed down the chain by a timer thread; the loop never sleeps.
/// </summary>
public sealed class DelayTapFactory : ITapFactory
{
    /// <inheritdoc/>
    public string Name => "delay";
    /// <inheritdoc/>
    public string Description => "add fixed or random latency to requests (timer-driven, never blocks the loop)";
    /// <inheritdoc/>
    public bool IsTerminator => false;
    /// <inheritdoc/>
    public IReadOnlyList<TapOptionInfo> Options { get; } =
    [
        new("ms", "fixed delay in milliseconds"),
        new("min", "smallest random delay in milliseconds (with max)"),
        new("max", "largest random delay in milliseconds (with min)"),
        new("ops", "operations to delay, separated by '+': read+write+flush+discard (default all)"),
        new("seed", "random seed (default: the run's seed)"),
    ];

    /// <inheritdoc/>
    public ITap Create(TapSpec spec, TapContext context)
    {
        bool hasMs = spec.Get("ms") != null, hasMin = spec.Get("min") != null, hasMax = spec.Get("max") != null;
        long min, max;
        if (hasMs)
        {
            if (hasMin || hasMax) throw new ChainSpecException("tap 'delay': give either ms=N or min=N,max=N, not both");
            min = max = spec.GetInt64("ms", 0);
        }
        else if (hasMin && hasMax)
        {
            min = spec.GetInt64("min", 0);
            max = spec.GetInt64("max", 0);
            if (max < min) throw new ChainSpecException($"tap 'delay': max={max} is less than min={min}");
        }
        else throw new ChainSpecException("tap 'delay': missing the delay: give ms=N (fixed) or min=N,max=N (uniform random), in milliseconds");
        if (min < 0) throw new ChainSpecException($"tap 'delay': delay {min} ms is negative");
        if (max > 3_600_000) throw new ChainSpecException($"tap 'delay': delay {max} ms is more than an hour");
        long seed = spec.GetInt64("seed", context.Seed);
        if (seed is < int.MinValue or > int.MaxValue) throw new ChainSpecException($"tap 'delay': seed={seed} does not fit in 32 bits");
        return new DelayTap(TimeSpan.FromMilliseconds(min), TimeSpan.FromMilliseconds(max), OpsFilter.Parse("delay", spec.Get("ops")), (int)seed);
    }
}

/// <summary>The <c>delay</c> tap.</summary>
/// <remarks>
/// Threading: the request hook runs on the loop thread (and draws the random delay there, so a given
/// request order reproduces). A private background thread resumes requests with
/// <see cref="TapRuntime.Resume"/>, which is thread-safe. <see cref="Dispose"/> resumes every request
/// still waiting, so none is lost.
/// </remarks>
public sealed class DelayTap : TapBase, IRequestHook
{
    private readonly long _minTicks, _spanTicks;
    private readonly OpsFilter _ops;
    private readonly Random _random;
    private readonly DelayScheduler _scheduler = new();
    private long _delayed;

    /// <summary>Creates a tap delaying every request by a uniform random time in [<paramref name="min"/>, <paramref name="max"/>].</summary>
    public DelayTap(TimeSpan min, TimeSpan max, int seed = 1) : this(min, max, OpsFilter.All, seed) { }

    internal DelayTap(TimeSpan min, TimeSpan max, OpsFilter ops, int seed) : base("delay")
    {
        if (min < TimeSpan.Zero || max < min) throw new ArgumentOutOfRangeException(nameof(max), "need 0 <= min <= max");
        _minTicks = (long)(min.TotalSeconds * Stopwatch.Frequency);
        _spanTicks = (long)(max.TotalSeconds * Stopwatch.Frequency) - _minTicks;
        _ops = ops;
        _random = new Random(seed);
    }

    /// <summary>Requests delayed so far (any thread).</summary>
    public long Delayed => Interlocked.Read(ref _delayed);

    /// <summary>Requests waiting on the timer now (any thread).</summary>
    public int Pending => _scheduler.Pending;

    /// <inheritdoc/>
    public HookResult OnRequest(TapRequest request)
    {
        if (!_ops.Contains(request.Operation)) return HookResult.Pass;
        long delay = _spanTicks == 0 ? _minTicks : _minTicks + _random.NextInt64(_spanTicks + 1);
        if (delay == 0) return HookResult.Pass;
        Interlocked.Increment(ref _delayed);
        // Due time counts from when the request entered the runtime, so time already spent counts.
        _scheduler.Schedule(request, request.SubmitTimestamp + delay);
        return HookResult.Stolen;
    }

    /// <inheritdoc/>
    public override void Dispose()
    {
        _scheduler.Dispose();
        base.Dispose();
    }
}
