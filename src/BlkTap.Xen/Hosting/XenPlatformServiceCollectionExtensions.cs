using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace BlkTap.Xen.Hosting;

/// <summary>Registers the real Xen platform (this process's domain, normally dom0) in a container.</summary>
public static class XenPlatformServiceCollectionExtensions
{
    /// <summary>
    /// Adds the platform contracts of the domain this process runs in, each a singleton opened at its first
    /// resolution and closed by the container: <see cref="IXenStore"/> (<see cref="XenStore"/>),
    /// <see cref="IGrantMapper"/> (<see cref="GntdevGrantMapper"/>), <see cref="IEventChannelFactory"/>
    /// (<see cref="XenEventChannelFactory"/>) for a backend, and <see cref="BlockFrontendPlatform"/> for a
    /// frontend (a <c>vbd</c> tap), opened as <see cref="XenFrontendPlatform.OpenLazily"/> does: gntalloc only at
    /// the first grant. TryAdd: a platform service registered earlier (an emulated one) wins.
    /// </summary>
    /// <remarks>
    /// Resolving throws <see cref="XenNotAvailableException"/> when this is not a Xen domain (check
    /// <see cref="XenDom0Backend.Unavailable"/> first to report it without a container) and
    /// <see cref="XenInteropException"/> when a device cannot be opened (not root). The objects are as thread-safe
    /// as their types: see each.
    /// </remarks>
    public static IServiceCollection AddXenPlatform(this IServiceCollection services)
    {
        ArgumentNullException.ThrowIfNull(services);
        services.TryAddSingleton(_ => new XenStore());
        services.TryAddSingleton<IXenStore>(sp => sp.GetRequiredService<XenStore>());
        services.TryAddSingleton<IGrantMapper>(_ => new GntdevGrantMapper());
        services.TryAddSingleton<IEventChannelFactory>(_ => new XenEventChannelFactory());
        services.TryAddSingleton(_ => new XenFrontendPlatformLease());
        services.TryAddSingleton(sp => sp.GetRequiredService<XenFrontendPlatformLease>().Platform);
        return services;
    }

    /// <summary>Holds the frontend platform's xenstore connection and grant issuer until the container is disposed.</summary>
    private sealed class XenFrontendPlatformLease : IDisposable
    {
        private readonly IDisposable _lifetime;

        public XenFrontendPlatformLease() => Platform = XenFrontendPlatform.OpenLazily(out _lifetime);

        public BlockFrontendPlatform Platform { get; }

        public void Dispose() => _lifetime.Dispose();
    }
}
