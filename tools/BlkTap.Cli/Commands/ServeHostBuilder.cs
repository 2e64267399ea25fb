using BlkTap.Cli.Daemon;
using BlkTap.Cli.Logging;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace BlkTap.Cli.Commands;

/// <summary>
/// What makes the serve verbs (<c>nbd serve</c>, <c>shm serve</c>, <c>xen serve</c>) daemons, in one place: logging
/// through <see cref="ILogger"/> to stderr in the chosen format and level (<see cref="CliLoggerProvider"/>), the
/// systemd lifetime under systemd (sd_notify readiness, SIGTERM) and sd_notify wherever <c>NOTIFY_SOCKET</c> is set,
/// the console lifetime otherwise (SIGINT/SIGTERM stop the host cleanly), <c>--metrics</c> and <c>--pidfile</c>.
/// </summary>
/// <remarks>Threading: static and stateless; call from the thread that runs the verb.</remarks>
internal static class ServeHostBuilder
{
    /// <summary>
    /// An empty host builder (no configuration files) for <c>nbd serve</c> and <c>shm serve</c>, with
    /// <see cref="AddDaemon"/>'s logging, lifetime and metrics.
    /// </summary>
    public static HostApplicationBuilder Create(CliIo io, CliLogSettings log, DaemonSettings daemon)
    {
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings { ContentRootPath = AppContext.BaseDirectory });
        AddDaemon(builder, io, log, daemon);
        return builder;
    }

    /// <summary>
    /// Logging (providers replaced by one <see cref="CliLoggerProvider"/> on <paramref name="io"/>'s stderr; the host's
    /// own Microsoft.* lines only from warning up), the systemd lifetime and sd_notify, and the metrics endpoint.
    /// Call before the serve service is added; call <see cref="AddPidFile"/> after it.
    /// </summary>
    public static void AddDaemon(HostApplicationBuilder builder, CliIo io, CliLogSettings log, DaemonSettings daemon)
    {
        builder.Logging.ClearProviders();
        builder.Logging.SetMinimumLevel(log.MinimumLevel);
        builder.Logging.AddFilter("Microsoft", log.MinimumLevel > LogLevel.Warning ? log.MinimumLevel : LogLevel.Warning);
        // A start that fails is the verb's one line (and exit code 2), not also the host's "Hosting failed to start".
        builder.Logging.AddFilter("Microsoft.Extensions.Hosting.Internal.Host", LogLevel.Critical);
        builder.Logging.AddProvider(new CliLoggerProvider(io.Err, log.Format));
        builder.Services.Configure<ConsoleLifetimeOptions>(o => o.SuppressStatusMessages = true);
        builder.Services.AddSystemd();
        if (SdNotifyService.Needed) builder.Services.AddHostedService<SdNotifyService>();
        if (daemon.Metrics is { } url) builder.Services.AddHostedService(sp => ActivatorUtilities.CreateInstance<MetricsEndpointService>(sp, url));
    }

    /// <summary><c>--pidfile</c>: a hosted service after the serve service, so the file appears once the socket listens.</summary>
    public static void AddPidFile(HostApplicationBuilder builder, DaemonSettings daemon)
    {
        if (daemon.PidFile is { } path) builder.Services.AddHostedService(_ => new PidFileService(path));
    }

    /// <summary>The exception a host's start failed with: the only inner exception of an <see cref="AggregateException"/>, or itself.</summary>
    public static Exception Unwrap(Exception ex) =>
        ex is AggregateException { InnerExceptions.Count: 1 } agg ? Unwrap(agg.InnerExceptions[0]) : ex;

    /// <summary>Disposes <paramref name="host"/> asynchronously (its services may be only <see cref="IAsyncDisposable"/>).</summary>
    public static async Task DisposeAsync(IHost host)
    {
        if (host is IAsyncDisposable a) await a.DisposeAsync().ConfigureAwait(false);
        else host.Dispose();
    }
}
