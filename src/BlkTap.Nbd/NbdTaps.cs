using BlkTap.Chains;

namespace BlkTap.Nbd;

/// <summary>
/// Registers this assembly's tap (<c>nbd</c>) with a <see cref="TapRegistry"/>: every public tap factory here, with
/// origin "built-in". <c>ExampleTaps.AddExampleTaps</c> (BlkTap.Examples) calls it, so every <c>blktap</c> verb has it.
/// </summary>
/// <remarks>Threading: as <see cref="TapRegistry"/> (one thread, before the registry is used).</remarks>
public static class NbdTaps
{
    /// <summary>Adds the NBD taps to <paramref name="registry"/> and shares this assembly with plugins that build on it.</summary>
    /// <returns><paramref name="registry"/>, for chaining.</returns>
    /// <exception cref="ChainSpecException">A tap of the same name is already registered.</exception>
    public static TapRegistry AddNbdTaps(this TapRegistry registry)
    {
        ArgumentNullException.ThrowIfNull(registry);
        registry.AddFrom(typeof(NbdTaps).Assembly, "built-in");
        registry.ShareWithPlugins(typeof(NbdTaps).Assembly);
        return registry;
    }
}
