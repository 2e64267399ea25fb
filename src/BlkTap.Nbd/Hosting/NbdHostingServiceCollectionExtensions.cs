using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace BlkTap.Nbd.Hosting;

/// <summary>Registers the NBD server as a hosted service.</summary>
public static class NbdHostingServiceCollectionExtensions
{
    /// <summary>
    /// Adds <see cref="NbdServeService"/> (a singleton, also resolvable as itself, for its
    /// <see cref="NbdServeService.Address"/>) with <paramref name="options"/>. The container must also hold a runtime
    /// (<c>AddBlkTap</c>); give it an epoll loop waiter (<c>BlkTap.Linux.EpollLoopWaiter</c>) so one thread serves the
    /// sockets, the hooks and the image.
    /// </summary>
    public static IServiceCollection AddNbdServe(this IServiceCollection services, NbdServeOptions options)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(options);
        services.TryAddSingleton(options);
        services.TryAddSingleton<NbdServeService>();
        services.AddHostedService(sp => sp.GetRequiredService<NbdServeService>());
        return services;
    }
}
