using BlkTap;
using BlkTap.Chains;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>
/// Registers what a host serves: the tap registry (built-in taps and plugins), the chain built from
/// <c>--tap</c> specs, and the runtime the chain is registered on.
/// </summary>
/// <remarks>
/// Every registration is a singleton made at its first resolution, on the resolving thread; the container
/// disposes the runtime before the chain (the taps flush and close their disks last). A chain that cannot be
/// built (<see cref="ChainSpecException"/>) surfaces where the runtime is first resolved: in a generic host,
/// from <c>StartAsync</c>.
/// </remarks>
public static class BlkTapChainServiceCollectionExtensions
{
    /// <summary>Adds <paramref name="registry"/> as the container's <see cref="TapRegistry"/> (TryAdd: a registry registered earlier wins).</summary>
    public static IServiceCollection AddTapRegistry(this IServiceCollection services, TapRegistry registry)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(registry);
        services.TryAddSingleton(registry);
        return services;
    }

    /// <summary>
    /// Adds the chain <paramref name="specs"/> (a <see cref="TapChainSpecs"/> and the <see cref="TapChain"/> the
    /// container's <see cref="TapRegistry"/> builds from them) and a <see cref="TapRuntime"/> with the chain
    /// registered first, then whatever <paramref name="configure"/> adds (a log control hook after the chain sees
    /// the size the terminator found).
    /// </summary>
    /// <remarks>
    /// The chain's <see cref="TapContext"/> is the container's <see cref="TapContext"/> if one is registered (its
    /// <see cref="TapContext.Output"/> and <see cref="TapContext.Seed"/>), with <see cref="TapContext.Frontends"/>
    /// taken from the container's <see cref="BlockFrontendPlatform"/> when it has none: the platform registered
    /// (<c>AddXenPlatform</c>, <c>AddEmulatedXenPlatform</c>) is the one a <c>vbd</c> tap connects through.
    /// </remarks>
    public static IServiceCollection AddBlkTap(this IServiceCollection services, IReadOnlyList<TapSpec> specs, Action<TapRuntimeBuilder>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(specs);
        services.TryAddSingleton(new TapChainSpecs(specs));
        services.TryAddSingleton(sp => sp.GetRequiredService<TapRegistry>().Build(sp.GetRequiredService<TapChainSpecs>().Specs, ChainContext(sp)));
        return services.AddBlkTap(b =>
        {
            b.AddChain();
            configure?.Invoke(b);
        });
    }

    private static TapContext ChainContext(IServiceProvider sp)
    {
        var template = sp.GetService<TapContext>();
        var frontends = template?.Frontends ?? sp.GetService<BlockFrontendPlatform>();
        return template == null ? new TapContext { Frontends = frontends } : template with { Frontends = frontends };
    }
}
