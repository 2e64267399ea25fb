using BlkTap.Storage;

namespace BlkTap.Chains;

/// <summary>What a tap may need from its host.</summary>
/// <remarks>
/// Immutable once built; thread-safe to read. A record, so a host that changes one thing copies the rest with
/// <c>context with { Frontends = ... }</c> and a property added here is never dropped by a hand-written copy.
/// </remarks>
public sealed record TapContext
{
    /// <summary>Where taps that print (dump, watch) write; defaults to standard output.</summary>
    public TextWriter Output { get; init; } = Console.Out;
    /// <summary>A seed for taps that draw random numbers (error, delay), so runs reproduce.</summary>
    public int Seed { get; init; } = 1;

    /// <summary>
    /// What a tap that is itself a block frontend (<c>vbd</c>, the lower end of an interposing chain)
    /// needs of the domain the host runs in; null where the host is not a Xen domain (or the emulator).
    /// </summary>
    public BlockFrontendPlatform? Frontends { get; init; }

    /// <summary>
    /// Where the storage taps (<c>img</c>, <c>aio</c>, <c>cow</c>) open their images and overlays. Null (the default):
    /// the OS's files (<c>BlkTap.Linux.Storage.LinuxStorageProvider</c>); the power-cut simulation puts a recording
    /// storage here (<c>BlkTap.Emulator.PowerCut.PowerCutStorage</c>).
    /// </summary>
    public IStorageProvider? Storage { get; init; }

    /// <summary>
    /// True when the chain is built only to check its specs (a command's early validation): taps must
    /// check their options but not open devices or connect to anything.
    /// </summary>
    public bool CheckOnly { get; init; }
}
