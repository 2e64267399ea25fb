using BlkTap.Testing.Logging;
using BlkTap.Nbd;
using BlkTap.Linux;
using NUnit.Framework;
using BlkTap.Testing.Nbd;
using BlkTap.Testing.Rigs;

namespace BlkTap.Nbd.Tests.Server;

/// <summary>The two ways an <see cref="NbdServer"/> serves, which every server contract test runs against.</summary>
public enum NbdServerKind
{
    /// <summary>A plain <see cref="INbdExportBackend"/> (the memory backend) on the server's private loop.</summary>
    Memory,

    /// <summary>
    /// The memory backend as the terminator of a tap chain, served through <see cref="NbdExportProvider"/> on the
    /// chain's own epoll loop: the direct path of <c>blktap nbd serve</c> (socket, hooks and disk on one thread).
    /// </summary>
    Chain,
}

/// <summary>An <see cref="NbdServer"/> of either kind over one <see cref="MemoryNbdExportBackend"/>; disposes what it started.</summary>
public sealed class NbdServerHost : IAsyncDisposable
{
    private readonly TapRuntime? _runtime;
    private readonly CancellationTokenSource _loopStop = new();
    private readonly Task? _loop;

    public NbdServerHost(NbdServerKind kind, MemoryNbdExportBackend backend, NbdServerOptions? options = null, string? exportName = null)
    {
        Kind = kind;
        if (kind == NbdServerKind.Memory)
        {
            Server = new NbdServer(new NbdSingleExportProvider(backend, exportName), options);
            return;
        }
        _runtime = new TapRuntime(new TapRuntimeOptions { Name = "nbd-test", Waiter = new EpollLoopWaiter() });
        var disk = new BlockDeviceHook(new MemoryBackendDevice(backend));
        _runtime.RegisterControlHook("disk", disk);
        _runtime.RegisterRequestHook("disk", disk);
        _loop = _runtime.RunAsync(_loopStop.Token);
        Server = new NbdServer(new NbdExportProvider(_runtime, exportName), options);
        if (!Server.ServesOnChainLoop) throw new InvalidOperationException("the chain host must serve on the chain's loop");
    }

    public NbdServerKind Kind { get; }

    public NbdServer Server { get; }

    /// <summary>The chain's runtime (Chain kind), whose loop thread serves the sockets; null for Memory.</summary>
    public TapRuntime? Runtime => _runtime;

    public async ValueTask DisposeAsync()
    {
        await Server.DisposeAsync();
        if (_runtime != null)
        {
            _loopStop.Cancel();
            await _loop!;
            _runtime.Dispose();
        }
        _loopStop.Dispose();
    }

    /// <summary>The memory backend's bytes as a block device (the chain's terminator). Loop thread.</summary>
    private sealed class MemoryBackendDevice(MemoryNbdExportBackend backend) : IBlockDevice
    {
        private const int Sector = BlkifConstants.SectorSize;

        public ulong SectorCount => backend.Size / Sector;

        public bool ReadOnly => backend.ReadOnly;

        public bool SupportsDiscard => true;

        public BlkifStatus Read(ulong sector, Span<byte> buffer)
        {
            backend.Data.AsSpan(checked((int)(sector * Sector)), buffer.Length).CopyTo(buffer);
            return BlkifStatus.Okay;
        }

        public BlkifStatus Write(ulong sector, ReadOnlySpan<byte> data)
        {
            data.CopyTo(backend.Data.AsSpan(checked((int)(sector * Sector)), data.Length));
            return BlkifStatus.Okay;
        }

        public BlkifStatus Flush() => backend.FlushAsync(default).Result == 0 ? BlkifStatus.Okay : BlkifStatus.Error;

        public BlkifStatus Discard(ulong sector, ulong count)
        {
            backend.Data.AsSpan(checked((int)(sector * Sector)), checked((int)(count * Sector))).Clear();
            return BlkifStatus.Okay;
        }

        public void Dispose() { }
    }
}

/// <summary>
/// Base of the server suites that run against both kinds: a scratch directory, a host per test, and the server's log.
/// </summary>
public abstract class NbdServerFixture(NbdServerKind kind)
{
    protected NbdServerKind Kind => kind;
    protected string _dir = null!;
    protected NbdServerHost? _host;
    protected readonly List<string> _log = [];

    protected NbdServer? _server => _host?.Server;

    [SetUp]
    public void CreateScratch() => _dir = NbdTestUtil.TempDir();

    [TearDown]
    public async Task DisposeHost()
    {
        if (_host != null) await _host.DisposeAsync();
        _host = null;
        try { Directory.Delete(_dir, true); } catch (IOException) { }
        lock (_log) _log.Clear();
    }

    /// <summary>Serves <paramref name="backend"/> on a Unix socket in the scratch directory; returns its path.</summary>
    protected string Serve(MemoryNbdExportBackend backend, int maxInFlight = 64)
    {
        _host = new NbdServerHost(kind, backend, new NbdServerOptions { MaxInFlightPerConnection = maxInFlight, Logger = new LineLogger(m => { lock (_log) _log.Add(m); }) });
        var sock = Path.Combine(_dir, "s.sock");
        _host.Server.ListenUnix(sock);
        return sock;
    }
}
