namespace BlkTap.Chains;

/// <summary>What a tap may need from its host.</summary>
/// <remarks>Immutable once built; thread-safe to read.</remarks>
public sealed class TapContext
{
    /// <summary>Where taps that print (dump, watch) write; defaults to standard output.</summary>
    public TextWriter Output { get; init; } = Console.Out;
    /// <summary>A seed for taps that draw random numbers (error, delay), so runs reproduce.</summary>
    public int Seed { get; init; } = 1;
}
