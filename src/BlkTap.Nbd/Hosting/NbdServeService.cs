using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace BlkTap.Nbd.Hosting;

/// <summary>
/// The hosted service behind <c>blktap nbd serve</c>: an <see cref="NbdServer"/> exporting the container's
/// <see cref="TapRuntime"/> (its hooks are the chain), its loop running for the service's lifetime. Register it with
/// <c>services.AddNbdServe(options)</c>.
/// </summary>
/// <remarks>
/// Threading: the host calls <see cref="StartAsync"/> then <see cref="StopAsync"/>, one at a time; the other members
/// are safe from any thread once start returned. Start runs the loop, probes the export (an empty disk throws
/// <see cref="NbdServeException"/> <see cref="NbdServeFailure.NoDisk"/>) and listens
/// (<see cref="NbdServeFailure.CannotListen"/>); the host's start then fails with that exception and disposing the
/// container stops what ran. Stop stops accepting, lets in-flight requests finish and be answered (at most
/// <see cref="NbdServeOptions.StopTimeout"/>), closes every session and removes the Unix socket, then stops the
/// loop; the container closes the chain's taps (flushing their disks) after this service. Logs through the container's
/// <see cref="ILoggerFactory"/> (categories <c>BlkTap.Nbd.Hosting.NbdServeService</c> and <c>BlkTap.Nbd.NbdServer</c>):
/// a warning when a TCP listener is not on a loopback address (NBD here has no TLS and no authentication).
/// </remarks>
public sealed class NbdServeService : IHostedService, IAsyncDisposable
{
    private static readonly TimeSpan LoopStopTimeout = TimeSpan.FromSeconds(10);
    private readonly TapRuntime _runtime;
    private readonly NbdServeOptions _options;
    private readonly ILogger _logger;
    private readonly ILogger _serverLogger;
    private readonly CancellationTokenSource _stopLoop = new();
    private Task? _loop;
    private NbdServer? _server;
    private int _disposed;

    /// <summary>
    /// Takes the runtime (built with its chain when the container first resolves it) and the logger factory (null:
    /// nothing is logged) from the container.
    /// </summary>
    public NbdServeService(TapRuntime runtime, NbdServeOptions options, ILoggerFactory? loggerFactory = null)
    {
        loggerFactory ??= NullLoggerFactory.Instance;
        _logger = loggerFactory.CreateLogger<NbdServeService>();
        _serverLogger = loggerFactory.CreateLogger<NbdServer>();
        _runtime = runtime ?? throw new ArgumentNullException(nameof(runtime));
        _options = options ?? throw new ArgumentNullException(nameof(options));
        if ((options.UnixPath == null) == (options.Port == null)) throw new ArgumentException("give exactly one of UnixPath or Port", nameof(options));
    }

    /// <summary>What a client sees (size, read-only), once started.</summary>
    public NbdExportGeometry? Geometry { get; private set; }

    /// <summary>Where clients connect, once started: <c>nbd+unix:///NAME?socket=PATH</c> or <c>nbd://HOST:PORT/NAME</c>.</summary>
    public string? Address { get; private set; }

    /// <summary>The server, once started.</summary>
    public NbdServer? Server => _server;

    /// <summary>Runs the loop, probes the export and listens.</summary>
    /// <exception cref="NbdServeException">The chain gives no disk, or the socket cannot be bound.</exception>
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        if (_loop != null) throw new InvalidOperationException("the NBD serve service is already started");
        _loop = _runtime.RunAsync(_stopLoop.Token);
        var provider = new NbdExportProvider(_runtime, _options.ExportName, _options.ReadOnly);
        var geometry = await provider.ProbeAsync(cancellationToken).ConfigureAwait(false);
        if (geometry.Size == 0)
            throw new NbdServeException(NbdServeFailure.NoDisk, "the chain gives the disk no size (its terminator could not open the disk): nothing to serve");
        var server = new NbdServer(provider, new NbdServerOptions { MaxInFlightPerConnection = _options.MaxInFlight, Logger = _serverLogger });
        _server = server;
        var name = Uri.EscapeDataString(_options.ExportName ?? "");
        try
        {
            if (_options.UnixPath != null)
            {
                var full = Path.GetFullPath(_options.UnixPath);
                server.ListenUnix(full);
                Address = $"nbd+unix:///{name}?socket={full}";
            }
            else
            {
                var ep = server.ListenTcp(_options.Port!.Value, _options.Bind);
                var host = ep.Address.AddressFamily == AddressFamily.InterNetworkV6 ? $"[{ep.Address}]" : ep.Address.ToString();
                Address = $"nbd://{host}:{ep.Port}/{name}";
                if (!IPAddress.IsLoopback(ep.Address))
                    _logger.LogWarning("listening on {Address}, not a loopback address: any host that reaches port {Port} can read and write the disk " +
                        "(no TLS, no authentication); bind 127.0.0.1 and tunnel, or firewall the port", host, ep.Port);
            }
        }
        catch (SocketException ex)
        {
            throw new NbdServeException(NbdServeFailure.CannotListen,
                $"cannot listen on {_options.UnixPath ?? $"port {_options.Port}"}: {ex.Message}", ex);
        }
        Geometry = geometry;
    }

    /// <summary>Stops accepting, lets in-flight requests finish, closes every session, then stops the loop.</summary>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        var server = Interlocked.Exchange(ref _server, null);
        if (server != null)
        {
            using var deadline = new CancellationTokenSource(_options.StopTimeout);
            try { await server.StopAsync(deadline.Token).ConfigureAwait(false); }
            catch (OperationCanceledException) { _logger.LogWarning("some clients did not take their replies in {Seconds} s; their connections were dropped", _options.StopTimeout.TotalSeconds); }
        }
        await StopLoopAsync().ConfigureAwait(false);
    }

    /// <summary>Stops what a start left running (a failed start, or a host that never stopped). Idempotent.</summary>
    public async ValueTask DisposeAsync()
    {
        // NOTE: registered as itself and as an IHostedService, the container disposes this instance twice.
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        var server = Interlocked.Exchange(ref _server, null);
        if (server != null) await server.DisposeAsync().ConfigureAwait(false);
        await StopLoopAsync().ConfigureAwait(false);
        _stopLoop.Dispose();
    }

    private async Task StopLoopAsync()
    {
        var loop = Interlocked.Exchange(ref _loop, null);
        if (loop == null) return;
        _stopLoop.Cancel();
        try { await loop.WaitAsync(LoopStopTimeout).ConfigureAwait(false); }
        catch (TimeoutException) { _logger.LogWarning("the tap loop did not stop in {Seconds} s", LoopStopTimeout.TotalSeconds); }
    }
}
