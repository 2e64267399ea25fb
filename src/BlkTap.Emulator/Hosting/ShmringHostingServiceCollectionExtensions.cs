using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace BlkTap.Emulator.Hosting;

/// <summary>Registers the shmring server as a hosted service.</summary>
public static class ShmringHostingServiceCollectionExtensions
{
    /// <summary>
    /// Adds <see cref="ShmringServeService"/> (a singleton, also resolvable as itself, for its outcome) with
    /// <paramref name="options"/>. The container must also hold a runtime (<c>AddBlkTap</c>); give it an epoll loop
    /// waiter (<c>BlkTap.Linux.EpollLoopWaiter</c>) so a notification wakes the loop thread directly.
    /// </summary>
    public static IServiceCollection AddShmringServe(this IServiceCollection services, ShmringServeOptions options)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(options);
        services.TryAddSingleton(options);
        services.TryAddSingleton<ShmringServeService>();
        services.AddHostedService(sp => sp.GetRequiredService<ShmringServeService>());
        return services;
    }
}
