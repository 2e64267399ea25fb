using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace BlkTap.Hosting;

/// <summary>Registers the xenbus backend as a hosted service.</summary>
public static class XenbusHostingServiceCollectionExtensions
{
    /// <summary>
    /// Adds <see cref="XenbusBackendService"/> (a singleton, also resolvable as itself) with
    /// <paramref name="options"/>. The container must also hold a runtime (<c>AddBlkTap</c>) and a platform
    /// (<c>AddXenPlatform</c>, <c>AddEmulatedXenPlatform</c>, or your own <see cref="IXenStore"/>,
    /// <see cref="IGrantMapper"/> and <see cref="IEventChannelFactory"/>).
    /// </summary>
    public static IServiceCollection AddXenbusBackend(this IServiceCollection services, XenbusBackendOptions options)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(options);
        services.TryAddSingleton(options);
        services.TryAddSingleton<XenbusBackendService>();
        services.AddHostedService(sp => sp.GetRequiredService<XenbusBackendService>());
        return services;
    }
}
