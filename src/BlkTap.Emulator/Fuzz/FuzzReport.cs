namespace BlkTap.Emulator;

/// <summary>Settings of a fuzz run.</summary>
/// <remarks>Threading: set before <see cref="Fuzzer.Run"/>; the callbacks' threads are documented on each.</remarks>
public sealed class FuzzOptions
{
    /// <summary>The run's seed; every round's seed derives from it (<see cref="Fuzzer.RoundSeed"/>).</summary>
    public int Seed { get; set; } = 1;
    /// <summary>
    /// Hostile requests to try: rounds run until at least this many requests a hostile guest put on the ring were
    /// judged by the backend and their answers checked. The honest guests' operations come on top (about as many).
    /// </summary>
    public long Iterations { get; set; } = 10_000;
    /// <summary>Requests per round (one fresh emulated system per round): about half honest, half hostile.</summary>
    public int RequestsPerRound { get; set; } = 400;
    /// <summary>Honest guests per round (a hostile guest and sometimes a dying guest come on top).</summary>
    public int HonestFrontends { get; set; } = 2;
    /// <summary>Probability that the chaos hook reorders a request.</summary>
    public double DelayRate { get; set; } = 0.1;
    /// <summary>Probability that the chaos hook fails a request.</summary>
    public double FailRate { get; set; } = 0.02;
    /// <summary>
    /// Rounds run at once, each on its own thread (default: one per core). Every round is deterministic in its
    /// seed and the report merges rounds in round order, so the report does not depend on this.
    /// </summary>
    public int Parallelism { get; set; } = Environment.ProcessorCount;
    /// <summary>
    /// Registers the chain under test (its hooks come after the chaos hook). Called once per round, from the
    /// round's thread: with <see cref="Parallelism"/> above 1, from several threads at once.
    /// </summary>
    public required Action<TapRuntime> Configure { get; init; }
    /// <summary>
    /// Called once per round after its emulated system is torn down, with the runtime <see cref="Configure"/> set
    /// up, from the round's thread: dispose what <see cref="Configure"/> made for it. Null: nothing to release.
    /// </summary>
    public Action<TapRuntime>? Release { get; init; }
    /// <summary>Called on <see cref="Fuzzer.Run"/>'s thread after each batch of rounds with (rounds done, hostile requests checked).</summary>
    public Action<int, long>? Progress { get; set; }
}

/// <summary>One invariant violation, with what reproduces it.</summary>
/// <param name="RoundSeed">The round's seed: <c>blktap fuzz --round SEED --round-size N</c> replays it.</param>
/// <param name="Requests">The smallest request count per round that still fails (after shrinking).</param>
/// <param name="Description">What broke.</param>
public sealed record FuzzFailure(int RoundSeed, int Requests, string Description);

/// <summary>What a fuzz run covered and found.</summary>
/// <remarks>Threading: filled by one thread at a time (each round fills its own, merged in round order).</remarks>
public sealed class FuzzReport
{
    /// <summary>Rounds run.</summary>
    public int Rounds;
    /// <summary>Honest operations checked against the model.</summary>
    public long HonestOperations;
    /// <summary>Hostile requests put on the ring, judged by the backend, and whose answers were checked.</summary>
    public long HostileRequests;
    /// <summary>Hostile requests by kind.</summary>
    public Dictionary<string, long> HostileKinds { get; } = new();
    /// <summary>Rounds where the hostile guest broke the ring protocol.</summary>
    public int ProtocolBreaks;
    /// <summary>Rounds where a guest domain was destroyed mid-flight.</summary>
    public int DomainDeaths;
    /// <summary>Spurious notifications sent.</summary>
    public long SpuriousNotifications;
    /// <summary>Requests the chaos hook reordered, and failed.</summary>
    public long Delayed, InjectedFailures;
    /// <summary>Invariant violations (empty when the run passed).</summary>
    public List<FuzzFailure> Failures { get; } = new();
    /// <summary>Wall time.</summary>
    public TimeSpan Elapsed;
    /// <summary>Hostile requests checked per second of wall time.</summary>
    public double HostileRequestsPerSecond => Elapsed > TimeSpan.Zero ? HostileRequests / Elapsed.TotalSeconds : 0;

    /// <summary>Adds one round's counts (not its failures, rounds or time) to this report.</summary>
    internal void Add(FuzzReport round)
    {
        HonestOperations += round.HonestOperations;
        HostileRequests += round.HostileRequests;
        foreach (var (kind, n) in round.HostileKinds) HostileKinds[kind] = HostileKinds.GetValueOrDefault(kind) + n;
        ProtocolBreaks += round.ProtocolBreaks;
        DomainDeaths += round.DomainDeaths;
        SpuriousNotifications += round.SpuriousNotifications;
        Delayed += round.Delayed;
        InjectedFailures += round.InjectedFailures;
    }
}
