using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Hosting.Systemd;

namespace BlkTap.Cli.Daemon;

/// <summary>
/// sd_notify(3) for a process whose parent is not systemd but that was given a <c>NOTIFY_SOCKET</c> (a wrapper in
/// <c>ExecStart</c>, another supervisor, a test): <c>READY=1</c> once every hosted service has started (the socket
/// listens), <c>STOPPING=1</c> when the stop begins. Under systemd itself <c>AddSystemd</c>'s lifetime does the same;
/// both send through Microsoft.Extensions.Hosting.Systemd's <see cref="SystemdNotifier"/>.
/// </summary>
/// <remarks>Threading: the host's lifetime raises the callbacks on its own threads; the notifier is thread-safe.</remarks>
internal sealed class SdNotifyService(IHostApplicationLifetime lifetime) : IHostedService
{
    private readonly SystemdNotifier _notifier = new();

    /// <summary>True when this process should notify by itself: a <c>NOTIFY_SOCKET</c> and a parent that is not systemd.</summary>
    public static bool Needed => !SystemdHelpers.IsSystemdService() && !string.IsNullOrEmpty(Environment.GetEnvironmentVariable("NOTIFY_SOCKET"));

    /// <inheritdoc/>
    public Task StartAsync(CancellationToken cancellationToken)
    {
        lifetime.ApplicationStarted.Register(() => _notifier.Notify(ServiceState.Ready));
        lifetime.ApplicationStopping.Register(() => _notifier.Notify(ServiceState.Stopping));
        return Task.CompletedTask;
    }

    /// <inheritdoc/>
    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
