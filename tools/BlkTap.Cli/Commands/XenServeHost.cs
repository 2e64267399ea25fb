using BlkTap.Chains;
using BlkTap.Hosting;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace BlkTap.Cli.Commands;

/// <summary>
/// The pieces of <c>blktap xen serve</c> that do not need a hypervisor, so the emulator can test them: the generic
/// host it runs in and the order in which the chain and the log hook meet a session.
/// </summary>
/// <remarks>Threading: static and stateless; call from the thread that builds the service.</remarks>
internal static class XenServeHost
{
    /// <summary>The configuration key of the default host builder's reload-on-change file watching.</summary>
    internal const string ReloadConfigOnChangeKey = "hostBuilder:reloadConfigOnChange";

    /// <summary>
    /// The generic host builder for a dom0 daemon: content root is the directory of the program (not the working
    /// directory, which is <c>/</c> under systemd) and configuration files are read once, never watched.
    /// </summary>
    /// <remarks>
    /// The default builder takes the working directory as its content root and watches it recursively for
    /// <c>appsettings.json</c> changes: started from <c>/</c> in a real dom0 it held 8192 inotify watches and took
    /// 170-180 s to start. <c>DOTNET_hostBuilder__reloadConfigOnChange=true</c> still turns watching back on.
    /// </remarks>
    public static HostApplicationBuilder CreateBuilder()
    {
        var configuration = new ConfigurationManager();
        configuration.AddInMemoryCollection(new Dictionary<string, string?> { [ReloadConfigOnChangeKey] = "false" });
        return Host.CreateApplicationBuilder(new HostApplicationBuilderSettings
        {
            ContentRootPath = AppContext.BaseDirectory,
            Configuration = configuration,
        });
    }

    /// <summary>
    /// <c>xen serve</c>'s composition, without its platform: the registry, the chain <paramref name="specs"/> (taps
    /// print to <paramref name="output"/>), the runtime "xen" with the chain then the log hook and its diagnostics
    /// to the host's logger, and the xenbus backend as the hosted service. Add a platform (<c>AddXenPlatform</c>, or
    /// <c>AddEmulatedXenPlatform</c> in tests) to serve.
    /// </summary>
    public static IServiceCollection Compose(IServiceCollection services, IReadOnlyList<TapSpec> specs, TapRegistry registry,
        XenbusBackendOptions backend, TextWriter output)
    {
        services.AddTapRegistry(registry);
        services.AddSingleton(new TapContext { Output = output });
        services.AddBlkTap(specs, b =>
        {
            b.Options.Name = "xen";
            b.LogToContainer();
        });
        return services.AddXenbusBackend(backend);
    }

    /// <summary>
    /// Registers the chain, then the log hook: control hooks run in registration order and the chain registers its
    /// terminator's first (<see cref="TapChain.Register(TapRuntime, IReadOnlyList{ITap})"/>), so the log line of an Attach shows the size the
    /// terminator found, not 0. (The composed host does the same through <see cref="TapLogging.LogToContainer"/>.)
    /// </summary>
    public static void RegisterChainAndLog(TapRuntime runtime, IReadOnlyList<ITap> taps, ILogger logger)
    {
        TapChain.Register(runtime, taps);
        runtime.RegisterControlHook("log", TapLogging.ControlHook(logger));
    }
}
