using BlkTap.Chains;
using BlkTap.Nbd;
using BlkTap.Trace;

namespace BlkTap.Examples;

/// <summary>
/// Registers the built-in taps (img, aio, qcow2, mem, vbd, dump, cow, crypt, watch, error, delay from this assembly, and nbd
/// from BlkTap.Nbd through <see cref="NbdTaps.AddNbdTaps"/>) with a <see cref="TapRegistry"/>: every public tap
/// factory of both assemblies, with origin "built-in".
/// </summary>
/// <remarks>Threading: as <see cref="TapRegistry"/> (one thread, before the registry is used).</remarks>
public static class ExampleTaps
{
    /// <summary>
    /// Adds the example taps and the NBD taps to <paramref name="registry"/> and shares this assembly, BlkTap.Nbd and
    /// BlkTap.Trace (which the dump tap's types expose) with plugins that build on them.
    /// </summary>
    /// <returns><paramref name="registry"/>, for chaining.</returns>
    /// <exception cref="ChainSpecException">A tap of the same name is already registered.</exception>
    public static TapRegistry AddExampleTaps(this TapRegistry registry)
    {
        ArgumentNullException.ThrowIfNull(registry);
        registry.AddFrom(typeof(ExampleTaps).Assembly, "built-in");
        registry.ShareWithPlugins(typeof(ExampleTaps).Assembly);
        registry.ShareWithPlugins(typeof(TraceCapture).Assembly);
        registry.AddNbdTaps();
        return registry;
    }

    /// <summary>A new registry holding the example taps: what every <c>blktap</c> verb starts from.</summary>
    public static TapRegistry CreateRegistry() => new TapRegistry().AddExampleTaps();
}
