using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace BlkTap.Cli.Commands;

/// <summary>
/// The generic host of <c>nbd serve</c> and <c>shm serve</c>: no configuration files, no log providers (the verbs
/// print their own lines, unchanged), the console lifetime (SIGINT/SIGTERM stop the host cleanly) or, under systemd,
/// the systemd lifetime (sd_notify readiness, SIGTERM).
/// </summary>
/// <remarks>Threading: static and stateless; call from the thread that runs the verb.</remarks>
internal static class ServeHostBuilder
{
    /// <summary>An empty host builder with the systemd integration and silent lifetime status messages.</summary>
    public static HostApplicationBuilder Create()
    {
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings { ContentRootPath = AppContext.BaseDirectory });
        builder.Services.Configure<ConsoleLifetimeOptions>(o => o.SuppressStatusMessages = true);
        builder.Services.AddSystemd();
        return builder;
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
