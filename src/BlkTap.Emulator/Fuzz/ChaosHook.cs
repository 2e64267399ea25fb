namespace BlkTap.Emulator;

/// <summary>
/// Deterministic fault simulation inside a tap chain: with seeded probabilities it steals a request and
/// resumes it from a later scheduler step (so completions reorder as the deterministic scheduler
/// chooses), or fails it with ERROR before it reaches the terminator (a backend failure). Every
/// injected failure is counted per domain, so a checker can tell injected errors from real ones.
/// </summary>
/// <remarks>Threading: loop thread (hook rules); <see cref="Post"/> must be the emulator's scheduler in deterministic mode.</remarks>
public sealed class ChaosHook : IRequestHook
{
    private readonly Random _random;
    private readonly Dictionary<ushort, long> _failed = new();

    /// <summary>Creates the hook.</summary>
    /// <param name="seed">Seed of its choices.</param>
    /// <param name="delayRate">Probability of stealing and resuming later.</param>
    /// <param name="failRate">Probability of failing a request with ERROR.</param>
    public ChaosHook(int seed, double delayRate, double failRate)
    {
        _random = new Random(seed);
        DelayRate = delayRate;
        FailRate = failRate;
    }

    /// <summary>Probability of a delayed (reordered) request.</summary>
    public double DelayRate { get; }
    /// <summary>Probability of an injected ERROR.</summary>
    public double FailRate { get; }
    /// <summary>How to run something later (the emulator's Post). Until set, nothing is delayed.</summary>
    public Action<Action>? Post { get; set; }
    /// <summary>Domains whose requests are left alone (hostile guests whose answers are checked exactly).</summary>
    public HashSet<ushort> Exempt { get; } = new();
    /// <summary>Requests delayed so far.</summary>
    public long Delayed { get; private set; }
    /// <summary>Injected failures per domain.</summary>
    public IReadOnlyDictionary<ushort, long> Failed => _failed;

    /// <inheritdoc/>
    public HookResult OnRequest(TapRequest request)
    {
        if (Exempt.Contains(request.Session.DomainId)) return HookResult.Pass;
        double roll = _random.NextDouble();
        if (roll < FailRate)
        {
            _failed[request.Session.DomainId] = _failed.GetValueOrDefault(request.Session.DomainId) + 1;
            request.Status = BlkifStatus.Error;
            return HookResult.Respond;
        }
        var post = Post;
        if (post != null && roll < FailRate + DelayRate)
        {
            Delayed++;
            // Two hops through the scheduler, so other work can overtake this request.
            post(() => post(() => request.Runtime.Resume(request)));
            return HookResult.Stolen;
        }
        return HookResult.Pass;
    }
}
