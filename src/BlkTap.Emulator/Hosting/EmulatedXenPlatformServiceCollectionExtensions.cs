using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace BlkTap.Emulator.Hosting;

/// <summary>Registers one domain of an in-process <see cref="XenEmulator"/> as the container's Xen platform.</summary>
public static class EmulatedXenPlatformServiceCollectionExtensions
{
    /// <summary>
    /// Adds the platform contracts of the emulated domain <paramref name="domid"/> (0: the emulator's dom0), the
    /// same ones <c>AddXenPlatform</c> adds for a real domain: <see cref="IXenStore"/> (the emulator's store),
    /// <see cref="IGrantMapper"/>, <see cref="IEventChannelFactory"/> and <see cref="BlockFrontendPlatform"/>. So a
    /// host composed for real Xen serves the emulator's guests when this is registered instead. TryAdd: a platform
    /// service registered earlier wins.
    /// </summary>
    /// <remarks>
    /// The objects are registered as instances: the container never disposes them; the emulator, which the caller
    /// owns, outlives the container. Threading: as the emulator's own objects (thread-safe).
    /// </remarks>
    /// <exception cref="ArgumentException">The emulator has no domain <paramref name="domid"/>.</exception>
    public static IServiceCollection AddEmulatedXenPlatform(this IServiceCollection services, XenEmulator emulator, ushort domid = 0)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(emulator);
        var frontends = emulator.FrontendPlatformFor(domid);
        services.TryAddSingleton<IXenStore>(emulator.Store);
        services.TryAddSingleton(emulator.GrantMapperFor(domid));
        services.TryAddSingleton(frontends.EventChannels);
        services.TryAddSingleton(frontends);
        return services;
    }
}
