using BlkTap.Chains;

namespace BlkTap.Examples;

/// <summary>
/// Registers this assembly's taps (img, aio, mem, nbd, dump, cow, crypt, watch, error, delay) as the built-in ones
/// of a <see cref="TapRegistry"/>: every public tap factory here, with origin "built-in".
/// </summary>
/// <remarks>Threading: as <see cref="TapRegistry"/> (one thread, before the registry is used).</remarks>
public static class ExampleTaps
{
    /// <summary>Adds the example taps to <paramref name="registry"/> and shares this assembly with plugins that build on it.</summary>
    /// <returns><paramref name="registry"/>, for chaining.</returns>
    /// <exception cref="ChainSpecException">A tap of the same name is already registered.</exception>
    public static TapRegistry AddExampleTaps(this TapRegistry registry)
    {
        ArgumentNullException.ThrowIfNull(registry);
        registry.AddFrom(typeof(ExampleTaps).Assembly, "built-in");
        registry.ShareWithPlugins(typeof(ExampleTaps).Assembly);
        return registry;
    }

    /// <summary>A new registry holding the example taps: what every <c>blktap</c> verb starts from.</summary>
    public static TapRegistry CreateRegistry() => new TapRegistry().AddExampleTaps();
}
