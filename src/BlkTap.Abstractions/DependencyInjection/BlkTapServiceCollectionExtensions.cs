using BlkTap;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers a block tap in a DI container.</summary>
public static class BlkTapServiceCollectionExtensions
{
    /// <summary>
    /// Adds a singleton <see cref="TapRuntime"/> configured by <paramref name="configure"/> (TryAdd:
    /// a runtime registered earlier wins). Hooks added by type are resolved from the container.
    /// </summary>
    public static IServiceCollection AddBlkTap(this IServiceCollection services, Action<TapRuntimeBuilder> configure)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configure);
        var builder = new TapRuntimeBuilder();
        configure(builder);
        services.TryAddSingleton(builder);
        services.TryAddSingleton(sp => sp.GetRequiredService<TapRuntimeBuilder>().Build(sp));
        return services;
    }
}
