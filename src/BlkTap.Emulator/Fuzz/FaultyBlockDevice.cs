namespace BlkTap.Emulator;

/// <summary>
/// A terminator's storage failing on purpose: wraps an <see cref="IBlockDevice"/> and, with seeded
/// probabilities, answers a read, write, flush or discard with ERROR instead of doing it (an EIO from
/// the disk). A failed write or discard leaves the data untouched (the device refused it before
/// writing), so a model that ignores failed writes stays exact. Every injected failure is counted.
/// </summary>
/// <remarks>
/// Threading: the choice sequence is deterministic only when calls come in a deterministic order
/// (one tap loop, deterministic emulator). Calls are serialised by a lock, so any thread may call.
/// </remarks>
public sealed class FaultyBlockDevice : IBlockDevice
{
    private readonly IBlockDevice _inner;
    private readonly Random _random;
    private readonly object _gate = new();
    private long _failures, _calls;

    /// <summary>Wraps <paramref name="inner"/>.</summary>
    /// <param name="inner">The real device (disposed with this one).</param>
    /// <param name="seed">Seed of the failure choices.</param>
    /// <param name="failRate">Probability that one call fails, 0..1.</param>
    public FaultyBlockDevice(IBlockDevice inner, int seed, double failRate)
    {
        ArgumentNullException.ThrowIfNull(inner);
        if (!(failRate >= 0 && failRate <= 1)) throw new ArgumentOutOfRangeException(nameof(failRate), failRate, "must be between 0 and 1");
        _inner = inner;
        _random = new Random(seed);
        FailRate = failRate;
    }

    /// <summary>Probability that one call fails.</summary>
    public double FailRate { get; }

    /// <summary>Whether calls fail at all; setting false makes the device healthy from now on (a repaired disk).</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>Failures injected so far.</summary>
    public long Failures => Interlocked.Read(ref _failures);

    /// <summary>Calls seen so far.</summary>
    public long Calls => Interlocked.Read(ref _calls);

    /// <inheritdoc/>
    public ulong SectorCount => _inner.SectorCount;
    /// <inheritdoc/>
    public bool ReadOnly => _inner.ReadOnly;
    /// <inheritdoc/>
    public bool SupportsDiscard => _inner.SupportsDiscard;

    private bool Fail()
    {
        Interlocked.Increment(ref _calls);
        bool fail;
        lock (_gate) fail = Enabled && _random.NextDouble() < FailRate;
        if (fail) Interlocked.Increment(ref _failures);
        return fail;
    }

    /// <inheritdoc/>
    public BlkifStatus Read(ulong sector, Span<byte> buffer) => Fail() ? BlkifStatus.Error : _inner.Read(sector, buffer);
    /// <inheritdoc/>
    public BlkifStatus Write(ulong sector, ReadOnlySpan<byte> data) => Fail() ? BlkifStatus.Error : _inner.Write(sector, data);
    /// <inheritdoc/>
    public BlkifStatus Flush() => Fail() ? BlkifStatus.Error : _inner.Flush();
    /// <inheritdoc/>
    public BlkifStatus Discard(ulong sector, ulong count) => Fail() ? BlkifStatus.Error : _inner.Discard(sector, count);
    /// <inheritdoc/>
    public void Dispose() => _inner.Dispose();
}
