using BlkTap.Chains;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace BlkTap.Hosting;

/// <summary>
/// The hosted service behind <c>blktap xen serve</c>: a <see cref="XenbusBlockBackend"/> and a
/// <see cref="DeadFrontendSweeper"/> serving the container's <see cref="TapRuntime"/> (its hooks are the chain) to
/// guests, over the platform the container holds (<see cref="IXenStore"/>, <see cref="IGrantMapper"/>,
/// <see cref="IEventChannelFactory"/>): the real one from <c>AddXenPlatform</c> or the emulator's from
/// <c>AddEmulatedXenPlatform</c>. Register it with <c>services.AddXenbusBackend(options)</c>.
/// </summary>
/// <remarks>
/// Threading: the host calls <see cref="StartAsync"/> then <see cref="StopAsync"/>, one at a time. Start runs the
/// runtime's loop on its own thread and starts watching xenstore; handshakes and ring work happen on the loop
/// thread. Stop closes every device (each frontend sees Closed), lets the loop finish that work (at most 5 s), then
/// stops the loop. A chain that cannot be built or a platform that cannot be opened throws from the container while the
/// host resolves this service: the host's start fails with that exception.
/// </remarks>
public sealed class XenbusBackendService : IHostedService, IAsyncDisposable
{
    private static readonly TimeSpan DrainTimeout = TimeSpan.FromSeconds(5);
    private readonly TapRuntime _runtime;
    private readonly TapChainSpecs? _chain;
    private readonly IXenStore _store;
    private readonly IGrantMapper _mapper;
    private readonly IEventChannelFactory _channels;
    private readonly XenbusBackendOptions _options;
    private readonly ILogger<XenbusBackendService> _logger;
    private readonly CancellationTokenSource _stopLoop = new();
    private Task? _loop;
    private int _disposed;
    private XenbusBlockBackend? _backend;
    private DeadFrontendSweeper? _sweeper;

    /// <summary>
    /// Takes the runtime (built with its chain when the container first resolves it) and the platform from the
    /// container; <paramref name="chain"/> only names the chain in the log.
    /// </summary>
    public XenbusBackendService(TapRuntime runtime, IXenStore store, IGrantMapper mapper, IEventChannelFactory channels,
        XenbusBackendOptions options, ILogger<XenbusBackendService> logger, TapChainSpecs? chain = null)
    {
        _runtime = runtime ?? throw new ArgumentNullException(nameof(runtime));
        _chain = chain;
        _store = store ?? throw new ArgumentNullException(nameof(store));
        _mapper = mapper ?? throw new ArgumentNullException(nameof(mapper));
        _channels = channels ?? throw new ArgumentNullException(nameof(channels));
        _options = options ?? throw new ArgumentNullException(nameof(options));
        _logger = logger ?? throw new ArgumentNullException(nameof(logger));
    }

    /// <summary>The xenbus backend, once started (its <see cref="XenbusBlockBackend.Root"/> is the watched directory).</summary>
    public XenbusBlockBackend? Backend => _backend;

    /// <summary>The runtime served.</summary>
    public TapRuntime Runtime => _runtime;

    /// <summary>Starts the loop and watches <c>/local/domain/&lt;be&gt;/backend/&lt;type&gt;</c>.</summary>
    public Task StartAsync(CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        if (_loop != null) throw new InvalidOperationException("the xenbus backend service is already started");
        var runtime = _runtime;
        _loop = runtime.RunAsync(_stopLoop.Token);
        try
        {
            _backend = new XenbusBlockBackend(runtime, _store, _mapper, _channels, _options);
            _sweeper = new DeadFrontendSweeper(runtime, _store, _options.BackendDomain, _backend.Root);
            _backend.Start();
            _sweeper.Start();
        }
        catch
        {
            _sweeper?.Dispose();
            _backend?.Dispose();
            _stopLoop.Cancel();
            throw;
        }
        _logger.LogInformation("serving {Root} with chain {Chain}", _backend.Root, _chain?.Text ?? string.Join(" -> ", runtime.RequestHookNames));
        return Task.CompletedTask;
    }

    /// <summary>Closes every device, lets the loop finish that work, then stops the loop.</summary>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (_loop == null) return;
        _sweeper?.Dispose();
        _backend?.Dispose();
        if (!_stopLoop.IsCancellationRequested)
        {
            var drained = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _runtime.Post(() => drained.TrySetResult());
            await Task.WhenAny(drained.Task, Task.Delay(DrainTimeout, cancellationToken)).ConfigureAwait(false);
        }
        _stopLoop.Cancel();
        await _loop.ConfigureAwait(false);
        _loop = null;
        _logger.LogInformation("stopped");
    }

    /// <summary>Stops what a start left running (when the host never called <see cref="StopAsync"/>). Idempotent.</summary>
    public async ValueTask DisposeAsync()
    {
        // NOTE: registered as itself and as an IHostedService, the container disposes this instance twice.
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        _sweeper?.Dispose();
        _backend?.Dispose();
        _stopLoop.Cancel();
        if (_loop != null) await _loop.ConfigureAwait(false);
        _loop = null;
        _stopLoop.Dispose();
    }
}
