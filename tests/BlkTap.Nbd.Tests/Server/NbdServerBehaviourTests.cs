using BlkTap.Testing.Logging;
using System.Collections.Concurrent;
using System.Net;
using System.Text.Json;
using BlkTap.Nbd;
using BlkTap.Testing;
using NUnit.Framework;
using static BlkTap.Nbd.Tests.Server.RawNbd;
using BlkTap.Testing.Nbd;
using BlkTap.Testing.Rigs;

namespace BlkTap.Nbd.Tests.Server;

/// <summary>Server behaviour beyond the wire: TCP listening, per-connection backends, backend failures.</summary>
[TestFixture]
[NonParallelizable]
public class NbdServerBehaviourTests
{
    private string _dir = null!;

    [SetUp]
    public void SetUp() => _dir = NbdTestUtil.TempDir();

    [TearDown]
    public void TearDown() { try { Directory.Delete(_dir, true); } catch (IOException) { } }

    /// <summary>Opens a fresh memory backend per connection and records open/close calls.</summary>
    private sealed class PerConnectionProvider : INbdExportProvider
    {
        public readonly ConcurrentDictionary<long, NbdClientInfo> Opened = new();
        public readonly ConcurrentDictionary<long, NbdClientInfo> Closed = new();
        public readonly ConcurrentDictionary<long, MemoryNbdExportBackend> Backends = new();
        public IReadOnlyList<string> ExportNames => ["a"];

        public ValueTask<INbdExportBackend?> OpenAsync(NbdClientInfo client, CancellationToken ct)
        {
            if (client.ExportName != "a") return ValueTask.FromResult<INbdExportBackend?>(null);
            Assert.That(Opened.TryAdd(client.ConnectionId, client), Is.True, "opened twice for one connection");
            var b = new MemoryNbdExportBackend(1 << 20);
            Backends[client.ConnectionId] = b;
            return ValueTask.FromResult<INbdExportBackend?>(b);
        }

        public ValueTask CloseAsync(INbdExportBackend backend, NbdClientInfo client)
        {
            Assert.That(Closed.TryAdd(client.ConnectionId, client), Is.True, "closed twice");
            Assert.That(backend, Is.SameAs(Backends[client.ConnectionId]));
            return ValueTask.CompletedTask;
        }
    }

    [Test]
    public async Task Provider_EachConnection_OpensAndClosesItsOwnBackendOnce()
    {
        var qemuIo = Peers.Require("qemu-io");
        var provider = new PerConnectionProvider();
        await using var server = new NbdServer(provider);
        var sock = Path.Combine(_dir, "p.sock");
        server.ListenUnix(sock);
        for (int i = 0; i < 3; i++)
            Peers.Run(qemuIo, ["-f", "raw", "-c", $"write -P {i + 1} 0 4096", $"nbd+unix:///a?socket={sock}"]).EnsureSuccess("qemu-io");
        using (var bad = Negotiating(sock))
        {
            SendOption(bad, (uint)NbdOption.Go, GoData("b"));
            Assert.That(ReadOptionReply(bad, (uint)NbdOption.Go).Type, Is.EqualTo(NbdOptionReplyType.ErrUnknown));
        }
        await server.StopAsync();
        Assert.That(provider.Opened.Count, Is.EqualTo(3));
        Assert.That(provider.Closed.Keys, Is.EquivalentTo(provider.Opened.Keys));
        Assert.That(provider.Backends.Values.Select(b => b.Data[0]).Order(), Is.EqualTo(new byte[] { 1, 2, 3 }), "each connection wrote its own backend");
        Assert.That(provider.Backends.Values.All(b => b.FlushCount >= 1), Is.True, "each backend flushed at close");
    }

    [Test]
    public async Task ListenTcp_PortZero_ServesNbdinfoOnChosenPort()
    {
        var nbdinfo = Peers.Require("nbdinfo");
        await using var server = new NbdServer(new MemoryNbdExportBackend(5 << 20));
        var ep = server.ListenTcp(0, IPAddress.Loopback);
        Assert.That(ep.Port, Is.GreaterThan(0));
        var r = Peers.Run(nbdinfo, ["--json", $"nbd://127.0.0.1:{ep.Port}/"]).EnsureSuccess("nbdinfo tcp");
        using var doc = JsonDocument.Parse(r.StdOut);
        Assert.That(doc.RootElement.GetProperty("exports")[0].GetProperty("export-size").GetInt64(), Is.EqualTo(5L << 20));
    }

    /// <summary>A backend that throws or fails at chosen offsets.</summary>
    private sealed class FaultyBackend(MemoryNbdExportBackend inner) : INbdExportBackend
    {
        public ulong Size => inner.Size;
        public bool ReadOnly => false;
        public bool CanMultiConn => false;
        public ValueTask<int> ReadAsync(ulong offset, Memory<byte> buffer, CancellationToken ct) =>
            offset == 4096 ? throw new InvalidOperationException("boom") : offset == 8192 ? ValueTask.FromResult(NbdError.EIO) : inner.ReadAsync(offset, buffer, ct);
        public async ValueTask<int> WriteAsync(ulong offset, ReadOnlyMemory<byte> data, bool fua, CancellationToken ct)
        {
            await Task.Yield();
            if (offset == 4096) throw new IOException("disk on fire");
            return await inner.WriteAsync(offset, data, fua, ct);
        }
        public ValueTask<int> FlushAsync(CancellationToken ct) => ValueTask.FromResult(-3);
        public ValueTask<int> TrimAsync(ulong offset, uint length, bool fua, CancellationToken ct) => inner.TrimAsync(offset, length, fua, ct);
        public ValueTask<int> WriteZeroesAsync(ulong offset, uint length, bool fua, bool mayTrim, CancellationToken ct) => inner.WriteZeroesAsync(offset, length, fua, mayTrim, ct);
    }

    [Test]
    public async Task BackendFailures_ThrowOrErrno_AnsweredAsErrorsAndConnectionContinues()
    {
        var inner = new MemoryNbdExportBackend(1 << 20);
        var log = new ConcurrentQueue<string>();
        await using var server = new NbdServer(new FaultyBackend(inner), new NbdServerOptions { Logger = new LineLogger(log.Enqueue) });
        var sock = Path.Combine(_dir, "f.sock");
        server.ListenUnix(sock);
        using var s = RawTransmission(sock, out _);
        Assert.That(Request(s, NbdCommand.Read, 1, 4096, 512).Error, Is.EqualTo((uint)NbdError.EIO), "throwing read");
        Assert.That(Request(s, NbdCommand.Read, 2, 8192, 512).Error, Is.EqualTo((uint)NbdError.EIO), "EIO read carries no payload");
        Assert.That(Request(s, NbdCommand.Write, 3, 4096, 4, [1, 2, 3, 4]).Error, Is.EqualTo((uint)NbdError.EIO), "throwing write");
        Assert.That(Request(s, NbdCommand.Flush, 4, 0, 0).Error, Is.EqualTo((uint)NbdError.EIO), "negative errno becomes EIO");
        Assert.That(Request(s, NbdCommand.Write, 5, 0, 4, [5, 6, 7, 8]).Error, Is.EqualTo(0u));
        var buf = new byte[4];
        Assert.That(Request(s, NbdCommand.Read, 6, 0, 4, readInto: buf).Error, Is.EqualTo(0u));
        Assert.That(buf, Is.EqualTo(new byte[] { 5, 6, 7, 8 }));
        Assert.That(log, Has.Some.Contains("boom"), "backend exception is logged");
    }

    [Test]
    public async Task StopAsync_ClientNeverReadsReplies_CancellationAbortsAndClosesConnection()
    {
        var backend = new MemoryNbdExportBackend(8 << 20);
        var server = new NbdServer(backend, new NbdServerOptions());
        var sock = Path.Combine(_dir, "x.sock");
        server.ListenUnix(sock);
        using var s = RawTransmission(sock, out _);
        var h = new byte[28];
        for (int i = 0; i < 40; i++)
        {
            new NbdRequestHeader(0, NbdCommand.Read, (ulong)i, 0, 4 << 20).Write(h);
            s.Send(h);
        }
        await Task.Delay(200);
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(1));
        var sw = System.Diagnostics.Stopwatch.StartNew();
        Assert.That(async () => await server.StopAsync(cts.Token), Throws.InstanceOf<OperationCanceledException>());
        Assert.That(sw.Elapsed, Is.LessThan(TimeSpan.FromSeconds(30)), "StopAsync gives up when its token fires, it does not wait for the stuck connection");
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (server.ActiveConnections > 0 && DateTime.UtcNow < deadline) await Task.Delay(20);
        Assert.That(server.ActiveConnections, Is.EqualTo(0), "aborted connection closed");
        await server.DisposeAsync();
    }
}
