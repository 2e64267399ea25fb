using System.Runtime.ExceptionServices;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace BlkTap.Emulator.Hosting;

/// <summary>
/// The hosted service behind <c>blktap shm serve</c>: a <see cref="ShmringServer"/> serving external frontends the
/// container's <see cref="TapRuntime"/> (its hooks are the chain), one session at a time. Without
/// <see cref="ShmringServeOptions.KeepServing"/> it stops the host after the first session. Register it with
/// <c>services.AddShmringServe(options)</c>.
/// </summary>
/// <remarks>
/// Threading: the host calls <see cref="StartAsync"/> then <see cref="StopAsync"/>, one at a time; the properties are
/// safe from any thread. Start listens (a missing directory or a socket in use throws <see cref="IOException"/>, and
/// the host's start fails with it), runs the loop and serves on a pool thread. Stop closes the session in progress,
/// stops the loop and removes the socket; the container closes the chain's taps (flushing their disks) after this
/// service.
/// </remarks>
public sealed class ShmringServeService : IHostedService, IDisposable
{
    private readonly TapRuntime _runtime;
    private readonly ShmringServeOptions _options;
    private readonly IHostApplicationLifetime _lifetime;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stopServing = new();
    private ShmringServer? _server;
    private Task? _loop;
    private Task? _serving;
    private volatile ShmringSessionResult? _lastSession;
    private volatile bool _stoppedByHost;
    private ExceptionDispatchInfo? _fault;
    private int _disposed;

    /// <summary>
    /// Takes the runtime (built with its chain when the container first resolves it) and the logger factory (null:
    /// nothing is logged; the server's category is <c>BlkTap.Emulator.ShmringServer</c>) from the container.
    /// </summary>
    public ShmringServeService(TapRuntime runtime, ShmringServeOptions options, IHostApplicationLifetime lifetime, ILoggerFactory? loggerFactory = null)
    {
        _logger = (loggerFactory ?? NullLoggerFactory.Instance).CreateLogger<ShmringServer>();
        _runtime = runtime ?? throw new ArgumentNullException(nameof(runtime));
        _options = options ?? throw new ArgumentNullException(nameof(options));
        _lifetime = lifetime ?? throw new ArgumentNullException(nameof(lifetime));
    }

    /// <summary>The socket frontends connect to (<c>DIR/evtchn</c>).</summary>
    public string SocketPath => Path.Combine(_options.Directory, ShmringProtocol.EventChannelFileName);

    /// <summary>The outcome of the last session that ended, or null when none did.</summary>
    public ShmringSessionResult? LastSession => _lastSession;

    /// <summary>True when the host stopped the service while it was still serving (a signal), not the service itself after its one session.</summary>
    public bool StoppedByHost => _stoppedByHost;

    /// <summary>Listens on <see cref="SocketPath"/>, runs the loop and starts serving.</summary>
    /// <exception cref="IOException">The directory does not exist or the socket is in use.</exception>
    public Task StartAsync(CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        if (_server != null) throw new InvalidOperationException("the shmring serve service is already started");
        var server = new ShmringServer(_options.Directory, _runtime, new ShmringServerOptions
        {
            HandshakeTimeout = _options.HandshakeTimeout,
            Logger = _logger,
        });
        _server = server;
        server.Start();
        _loop = _runtime.RunAsync(CancellationToken.None);
        _serving = Task.Run(() => ServeAsync(server));
        return Task.CompletedTask;
    }

    /// <summary>Closes the session in progress (if any), stops the loop and removes the socket.</summary>
    /// <remarks>A failure of the serving loop itself (not a session's) is rethrown here.</remarks>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (_serving != null)
        {
            if (!_serving.IsCompleted) _stoppedByHost = true;
            _stopServing.Cancel();
            await _serving.ConfigureAwait(false);
        }
        await StopLoopAsync().ConfigureAwait(false);
        Interlocked.Exchange(ref _server, null)?.Dispose();
        _fault?.Throw();
    }

    /// <summary>Stops what a start left running (a failed start, or a host that never stopped). Idempotent.</summary>
    public void Dispose()
    {
        // NOTE: registered as itself and as an IHostedService, the container disposes this instance twice.
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        _stopServing.Cancel();
        try { _serving?.GetAwaiter().GetResult(); } catch (Exception) { } // its fault was reported by StopAsync
        StopLoopAsync().GetAwaiter().GetResult();
        Interlocked.Exchange(ref _server, null)?.Dispose();
        _stopServing.Dispose();
    }

    private async Task ServeAsync(ShmringServer server)
    {
        var stop = _stopServing.Token;
        try
        {
            while (true)
            {
                var result = await server.ServeOneAsync(stop).ConfigureAwait(false);
                if (result.End != ShmringSessionEnd.Stopped || result.Statistics != null)
                {
                    _lastSession = result;
                    _options.SessionEnded?.Invoke(result);
                }
                if (result.End == ShmringSessionEnd.Stopped || !_options.KeepServing || stop.IsCancellationRequested) break;
            }
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !stop.IsCancellationRequested)
        {
            _fault = ExceptionDispatchInfo.Capture(ex);
        }
        // One session served (or a failure): the host stops; a stop it asked for is already under way.
        if (!stop.IsCancellationRequested) _lifetime.StopApplication();
    }

    private async Task StopLoopAsync()
    {
        var loop = Interlocked.Exchange(ref _loop, null);
        if (loop == null) return;
        _runtime.Stop();
        await loop.ConfigureAwait(false);
    }
}
