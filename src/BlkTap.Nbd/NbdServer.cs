using System.Net;
using System.Net.Sockets;
using BlkTap.Loop;
using BlkTap.Nbd.Internal;
using Microsoft.Extensions.Logging;

namespace BlkTap.Nbd;

/// <summary>
/// An NBD server (fixed newstyle, simple replies only). Listens on a Unix socket or TCP; serves every accepted
/// client concurrently, each with many requests in flight and out-of-order replies; dispatches to the
/// <see cref="INbdExportBackend"/> that the <see cref="INbdExportProvider"/> opens per connection.
/// A misbehaving client (garbage handshake, garbage request magic, oversized write) is disconnected alone.
/// <para>Threading: all public members are thread-safe. Start listening once, then <see cref="StopAsync"/>.</para>
/// </summary>
public sealed class NbdServer : IAsyncDisposable
{
    private readonly INbdExportProvider _provider;
    private readonly NbdServerOptions _options;
    private readonly CancellationTokenSource _stop = new();
    private readonly CancellationTokenSource _abort = new();
    private readonly Lock _lock = new();
    private readonly HashSet<Task> _connections = [];
    private Socket? _listener;
    private Task? _acceptLoop;
    private string? _unixPath;
    private long _nextId;
    private readonly EventLoop _loop;
    private readonly bool _ownsLoop;
    private Task? _loopTask;
    private readonly Internal.NbdServerCounters _counters = new();

    /// <summary>Creates a server over a provider.</summary>
    public NbdServer(INbdExportProvider provider, NbdServerOptions? options = null)
    {
        _provider = provider ?? throw new ArgumentNullException(nameof(provider));
        _options = options ?? new NbdServerOptions();
        if (_options.MaxInFlightPerConnection < 1) throw new ArgumentOutOfRangeException(nameof(options), "MaxInFlightPerConnection must be at least 1");
        // Connections are served on a loop that watches their sockets: the chain's own loop when it can (then reads,
        // writes, hooks and replies all run on one thread), else an event loop of the server's own with an epoll waiter.
        if (provider is NbdExportProvider p && p.Runtime.SupportsDescriptors) _loop = p.Runtime.Loop;
        else
        {
            var log = _options.Logger;
            _loop = new EventLoop(new EventLoopOptions
            {
                Name = "nbd-server",
                Waiter = new BlkTap.Linux.EpollLoopWaiter(),
                HandlerFailed = (what, ex) => log?.LogError(ex, "loop handler {Handler} failed", what),
            });
            _ownsLoop = true;
        }
    }

    /// <summary>
    /// Read replies so far whose data went from the image file to the socket with sendfile(2), not through a buffer:
    /// on the direct path (<see cref="ServesOnChainLoop"/>), reads of at least 32 KiB from a terminator that answers
    /// with a file range (<c>img</c> on a file in memory) when no other hook is in the chain. Thread-safe.
    /// </summary>
    public long RepliesSentFromFile => _counters.RepliesFromFile;

    /// <summary>True when connections run on the chain's own loop (no thread hand-off per request).</summary>
    public bool ServesOnChainLoop => !_ownsLoop;

    /// <summary>Creates a server exporting one backend under any export name.</summary>
    public NbdServer(INbdExportBackend backend, NbdServerOptions? options = null)
        : this(new NbdSingleExportProvider(backend), options) { }

    /// <summary>The bound endpoint (for TCP with port 0, the chosen port), or null before listening.</summary>
    public EndPoint? LocalEndPoint => _listener?.LocalEndPoint;

    /// <summary>Connections currently open.</summary>
    public int ActiveConnections { get { lock (_lock) return _connections.Count; } }

    /// <summary>Listens on a Unix socket at <paramref name="path"/> (an existing socket file there is replaced).</summary>
    public void ListenUnix(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (File.Exists(path)) File.Delete(path);
        var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        Start(s, new UnixDomainSocketEndPoint(path));
        _unixPath = path;
    }

    /// <summary>Listens on TCP <paramref name="port"/> (0: any free port, see <see cref="LocalEndPoint"/>) at <paramref name="bind"/> (default loopback).</summary>
    public IPEndPoint ListenTcp(int port, IPAddress? bind = null)
    {
        if (port is < 0 or > 65535) throw new ArgumentOutOfRangeException(nameof(port), port, "TCP port must be 0..65535");
        bind ??= IPAddress.Loopback;
        var s = new Socket(bind.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        s.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
        Start(s, new IPEndPoint(bind, port));
        return (IPEndPoint)s.LocalEndPoint!;
    }

    private void Start(Socket socket, EndPoint ep)
    {
        lock (_lock)
        {
            if (_listener != null) { socket.Dispose(); throw new InvalidOperationException("the NBD server is already listening"); }
            try { socket.Bind(ep); socket.Listen(64); }
            catch { socket.Dispose(); throw; }
            _listener = socket;
        }
        if (_ownsLoop) _loopTask = _loop.RunAsync();
        _acceptLoop = Task.Run(AcceptLoopAsync);
    }

    private async Task AcceptLoopAsync()
    {
        var listener = _listener!;
        while (!_stop.IsCancellationRequested)
        {
            Socket client;
            try { client = await listener.AcceptAsync(_stop.Token).ConfigureAwait(false); }
            catch (OperationCanceledException) { break; }
            catch (ObjectDisposedException) { break; }
            catch (SocketException e)
            {
                _options.Logger?.LogWarning("accept failed: {SocketError}", e.SocketErrorCode);
                if (_stop.IsCancellationRequested) break;
                await Task.Delay(10).ConfigureAwait(false);
                continue;
            }
            if (client.AddressFamily != AddressFamily.Unix) client.NoDelay = true;
            long id = Interlocked.Increment(ref _nextId);
            var conn = new NbdServerConnection(client, id, _provider, _options, _loop, _counters, _stop.Token, _abort.Token);
            lock (_lock)
            {
                // The tracked task ends after the connection has left the set, so StopAsync sees none left.
                Task t = null!;
                t = Track(conn.Run(), () => t);
                _connections.Add(t);
            }
        }
    }

    private async Task Track(Task connection, Func<Task> self)
    {
        await connection.ConfigureAwait(false); // never faults
        await Task.Yield(); // let the caller add this task to the set first
        lock (_lock) _connections.Remove(self());
    }

    /// <summary>
    /// Stops accepting, stops reading new requests, lets in-flight requests finish and be answered, flushes each
    /// connection's backend, closes every connection, and removes the Unix socket file. Idempotent.
    /// If <paramref name="cancellationToken"/> fires first (for example a client that never reads its replies),
    /// pending replies are abandoned, connections close, and the call throws <see cref="OperationCanceledException"/>.
    /// </summary>
    public async Task StopAsync(CancellationToken cancellationToken = default)
    {
        Socket? listener;
        lock (_lock) listener = _listener;
        if (!_stop.IsCancellationRequested) _stop.Cancel();
        listener?.Dispose();
        try
        {
            if (_acceptLoop != null) await _acceptLoop.WaitAsync(cancellationToken).ConfigureAwait(false);
            Task[] open;
            lock (_lock) open = [.. _connections];
            await Task.WhenAll(open).WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // Out of patience: abandon pending replies; connections close as soon as their backend calls return.
            // (Done here rather than in a token registration, whose callback could be unregistered before it ran.)
            _abort.Cancel();
            throw;
        }
        finally
        {
            if (_unixPath != null) { try { File.Delete(_unixPath); } catch (IOException) { } }
        }
        StopOwnLoop();
    }

    private void StopOwnLoop()
    {
        if (!_ownsLoop) return;
        lock (_lock) if (_connections.Count > 0) return; // abandoned connections still use it
        _loop.Dispose();
    }

    /// <summary>Same as <see cref="StopAsync"/>.</summary>
    public async ValueTask DisposeAsync()
    {
        await StopAsync().ConfigureAwait(false);
        _stop.Dispose();
        _abort.Dispose();
    }
}
