using System.Diagnostics;
using BlkTap.Nbd;
using BlkTap.Testing;
using NUnit.Framework;
using BlkTap.Testing.Nbd;
using BlkTap.Testing.Rigs;

namespace BlkTap.Nbd.Tests.Client;

/// <summary>
/// One contract suite for <see cref="NbdClient"/>, run against every real NBD server we have (subclasses below).
/// The export holds <see cref="DiskSize"/> bytes whose expected content is <see cref="Model"/>, a plain byte array.
/// </summary>
public abstract class NbdClientContract
{
    protected const int DiskSize = 1 << 20;
    protected const int Sector = 512;

    protected byte[] Model = null!;
    protected NbdUri Uri = null!;
    protected string Dir = null!;
    private NbdBlockingClient? _client;

    /// <summary>True when the server starts with zeroes (memory exports); false when it serves a file we fill.</summary>
    protected virtual bool StartsZeroed => false;

    /// <summary>Starts the server over an export whose content is <paramref name="initial"/> (all zero if <see cref="StartsZeroed"/>).</summary>
    protected abstract NbdUri StartServer(string dir, byte[] initial);

    protected abstract void StopServer();

    [OneTimeSetUp]
    public void StartPeer()
    {
        Dir = NbdTestUtil.TempDir();
        Model = StartsZeroed ? new byte[DiskSize] : NbdTestUtil.RandomBytes(DiskSize, 4242);
        Uri = StartServer(Dir, Model);
    }

    [OneTimeTearDown]
    public void StopPeer()
    {
        _client?.Dispose();
        _client = null;
        StopServer();
        try { Directory.Delete(Dir, true); } catch (IOException) { }
    }

    /// <summary>A connected client shared by the fixture's tests (reconnected if a test broke it).</summary>
    protected NbdBlockingClient Client
    {
        get
        {
            _client ??= new NbdBlockingClient(Uri);
            if (_client.Client.IsBroken) _client.Reconnect();
            return _client;
        }
    }

    [Test]
    public void Connect_Server_ReportsExportSizeAndFlags()
    {
        var c = Client.Client;
        Assert.That(c.ExportSize, Is.EqualTo((ulong)DiskSize));
        Assert.That(c.TransmissionFlags & NbdTransmissionFlags.HasFlags, Is.EqualTo(NbdTransmissionFlags.HasFlags));
        Assert.That(c.TransmissionFlags & NbdTransmissionFlags.ReadOnly, Is.EqualTo(NbdTransmissionFlags.None));
        Assert.That(c.ExportInfo.UsedGo, Is.True, "every server here supports NBD_OPT_GO");
        Assert.That(c.Socket!.Blocking, Is.False, "after the handshake the socket belongs to a non-blocking event loop");
    }

    /// <summary>
    /// Random 512-byte-aligned reads and writes, up to 128 KiB each, grouped into batches whose members are all in
    /// flight together (no batch holds a write overlapping another member, so the outcome does not depend on the
    /// order the server runs them); every read must match the model.
    /// </summary>
    [FsCheck.NUnit.Property(MaxTest = 25, QuietOnSuccess = true)]
    public void Submit_RandomBatchesInFlight_MatchByteArrayModel((bool Write, ushort Start, byte Sectors, byte Seed)[] ops)
    {
        var c = Client;
        var batch = new List<(bool Write, int Offset, int Length, byte[] Buffer)>();
        int i = 0;
        while (i < ops.Length)
        {
            batch.Clear();
            for (; i < ops.Length; i++)
            {
                var (write, start, sectors, seed) = ops[i];
                int offset = start % (DiskSize / Sector) * Sector;
                int length = Math.Min((sectors % 256 + 1) * Sector, DiskSize - offset);
                bool clash = false;
                foreach (var b in batch)
                    if ((write || b.Write) && offset < b.Offset + b.Length && b.Offset < offset + length) clash = true;
                if (clash) break;
                var buffer = new byte[length];
                if (write) new Random(seed * 31 + start).NextBytes(buffer);
                batch.Add((write, offset, length, buffer));
            }
            for (int k = 0; k < batch.Count; k++)
            {
                var b = batch[k];
                c.Submit(b.Write ? NbdCommand.Write : NbdCommand.Read, (ulong)b.Offset, (uint)b.Length, b.Buffer, (ulong)k);
            }
            c.WaitAll();
            for (int k = 0; k < batch.Count; k++)
            {
                Assert.That(c.Results[(ulong)k], Is.EqualTo(0), $"request {k} of the batch failed");
                var b = batch[k];
                if (b.Write) b.Buffer.CopyTo(Model, b.Offset);
            }
            foreach (var b in batch)
                if (!b.Write && !b.Buffer.AsSpan().SequenceEqual(Model.AsSpan(b.Offset, b.Length)))
                    Assert.Fail($"READ {b.Offset}+{b.Length} differs from the model");
            ((Dictionary<ulong, int>)c.Results).Clear();
        }
    }

    [Test]
    public void Submit_512RequestsInFlight_AllCompleteWithTheRightData()
    {
        var c = Client;
        const int n = 256, size = 4096;
        var rnd = new Random(7);
        var writes = new byte[n][];
        for (int k = 0; k < n; k++)
        {
            writes[k] = new byte[size];
            rnd.NextBytes(writes[k]);
            c.Submit(NbdCommand.Write, (ulong)(k * size), size, writes[k], (ulong)k);
        }
        var reads = new byte[n][];
        c.WaitAll();
        for (int k = 0; k < n; k++)
        {
            writes[k].CopyTo(Model, k * size);
            reads[k] = new byte[size];
            c.Submit(NbdCommand.Read, (ulong)((n - 1 - k) * size), size, reads[k], (ulong)(n + k));
        }
        c.WaitAll();
        Assert.That(c.Results, Has.Count.EqualTo(2 * n));
        Assert.That(c.Results.Values, Is.All.EqualTo(0));
        for (int k = 0; k < n; k++)
            Assert.That(reads[k], Is.EqualTo(writes[n - 1 - k]), $"read {k}");
        ((Dictionary<ulong, int>)c.Results).Clear();
    }

    [Test]
    public void FlushFuaTrim_WhenAdvertised_SucceedAndDataStays()
    {
        var c = Client;
        var flags = c.Client.TransmissionFlags;
        var data = NbdTestUtil.RandomBytes(8192, 99);
        int offset = 64 * 1024;
        if ((flags & NbdTransmissionFlags.SendFua) != 0)
            Assert.That(c.Write((ulong)offset, data, fua: true), Is.EqualTo(0));
        else
            Assert.That(c.Write((ulong)offset, data), Is.EqualTo(0));
        data.CopyTo(Model, offset);
        if ((flags & NbdTransmissionFlags.SendFlush) != 0) Assert.That(c.Flush(), Is.EqualTo(0));
        else Assert.Throws<NotSupportedException>(() => c.Flush());
        if ((flags & NbdTransmissionFlags.SendTrim) != 0)
        {
            Assert.That(c.Trim((ulong)offset, 4096), Is.EqualTo(0));
            // NOTE: proto.md NBD_CMD_TRIM: trimmed content is unspecified; put the model's bytes back.
            Assert.That(c.Write((ulong)offset, Model.AsMemory(offset, 4096)), Is.EqualTo(0));
        }
        var back = new byte[8192];
        Assert.That(c.Read((ulong)offset, back), Is.EqualTo(0));
        Assert.That(back, Is.EqualTo(Model.AsSpan(offset, 8192).ToArray()));
    }

    [Test]
    public void WriteZeroes_WhenAdvertised_ReadsBackZeroes()
    {
        var c = Client;
        if ((c.Client.TransmissionFlags & NbdTransmissionFlags.SendWriteZeroes) == 0)
        {
            Assert.Throws<NotSupportedException>(() => c.Submit(NbdCommand.WriteZeroes, 0, 4096, default, 1));
            return;
        }
        int offset = 200 * 1024;
        var data = NbdTestUtil.RandomBytes(16384, 11);
        Assert.That(c.Write((ulong)offset, data), Is.EqualTo(0));
        Assert.That(c.Run(NbdCommand.WriteZeroes, (ulong)offset + 4096, 8192, default), Is.EqualTo(0));
        Assert.That(c.Run(NbdCommand.WriteZeroes, (ulong)offset + 12288, 512, default, NbdCommandFlags.NoHole), Is.EqualTo(0));
        data.AsSpan(4096, 8192 + 512).Clear();
        data.CopyTo(Model, offset);
        var back = new byte[16384];
        Assert.That(c.Read((ulong)offset, back), Is.EqualTo(0));
        Assert.That(back.AsSpan().SequenceEqual(data), Is.True);
    }

    [Test]
    public void Read_PastTheEnd_CompletesWithAnErrorAndTheConnectionStaysUsable()
    {
        var c = Client;
        var buf = new byte[4096];
        int error = c.Read(DiskSize - 512, buf);
        Assert.That(error, Is.GreaterThan(0), "a read past the end must fail with an NBD error, not succeed or lose the connection");
        Assert.That(c.Client.IsBroken, Is.False);
        Assert.That(c.Read(0, buf), Is.EqualTo(0));
        Assert.That(buf, Is.EqualTo(Model.AsSpan(0, 4096).ToArray()));
    }

    [Test]
    public void Disconnect_Submitted_CompletesThenReconnectServesAgain()
    {
        var c = Client;
        c.Submit(NbdCommand.Disconnect, 0, 0, default, 77);
        c.Client.Flush();
        Assert.That(c.Results[77], Is.EqualTo(0));
        Assert.Throws<InvalidOperationException>(() => c.Submit(NbdCommand.Read, 0, 512, new byte[512], 78));
        var deadline = Stopwatch.StartNew();
        while (!c.Client.IsBroken && deadline.Elapsed < TimeSpan.FromSeconds(60))
        {
            if (c.Client.Socket!.Poll(100_000, System.Net.Sockets.SelectMode.SelectRead)) c.Client.OnReadable();
        }
        Assert.That(c.Client.IsBroken, Is.True, "the server closes the connection after NBD_CMD_DISC");
        Assert.That(c.Client.BrokenReason, Does.Contain("DISC"));
        c.Reconnect();
        var buf = new byte[512];
        Assert.That(c.Read(512, buf), Is.EqualTo(0));
        Assert.That(buf, Is.EqualTo(Model.AsSpan(512, 512).ToArray()));
        ((Dictionary<ulong, int>)c.Results).Clear();
    }
}

/// <summary>nbdkit's memory plugin over a Unix socket.</summary>
[TestFixture, NonParallelizable]
public class NbdClientNbdkitMemoryTests : NbdClientContract
{
    private BackgroundPeer? _peer;
    protected override bool StartsZeroed => true;

    protected override NbdUri StartServer(string dir, byte[] initial)
    {
        var nbdkit = Peers.Require("nbdkit");
        var uri = NbdUri.ForUnix(Path.Combine(dir, "s.sock"));
        _peer = new BackgroundPeer(nbdkit, ["-f", "--exit-with-parent", "-U", uri.SocketPath!, "memory", DiskSize.ToString()]).WaitReady(uri);
        return uri;
    }

    protected override void StopServer() => _peer?.Dispose();
}

/// <summary>nbdkit's file plugin over TCP.</summary>
[TestFixture, NonParallelizable]
public class NbdClientNbdkitFileTcpTests : NbdClientContract
{
    private BackgroundPeer? _peer;

    protected override NbdUri StartServer(string dir, byte[] initial)
    {
        var nbdkit = Peers.Require("nbdkit");
        var file = Path.Combine(dir, "disk.img");
        File.WriteAllBytes(file, initial);
        int port = NbdTestUtil.FreeTcpPort();
        var uri = NbdUri.Parse($"nbd://127.0.0.1:{port}/");
        _peer = new BackgroundPeer(nbdkit, ["-f", "--exit-with-parent", "-i", "127.0.0.1", "-p", port.ToString(), "file", file]).WaitReady(uri);
        return uri;
    }

    protected override void StopServer() => _peer?.Dispose();
}

/// <summary>qemu-nbd serving a raw file over a Unix socket.</summary>
[TestFixture, NonParallelizable]
public class NbdClientQemuNbdTests : NbdClientContract
{
    private BackgroundPeer? _peer;

    protected override NbdUri StartServer(string dir, byte[] initial)
    {
        var qemuNbd = Peers.Require("qemu-nbd");
        var file = Path.Combine(dir, "disk.img");
        File.WriteAllBytes(file, initial);
        var uri = NbdUri.Parse($"nbd+unix:///disk?socket={dir}/q.sock");
        // -t: keep serving after a client leaves; -e: clients at once; -x: export name.
        _peer = new BackgroundPeer(qemuNbd, ["-k", uri.SocketPath!, "-f", "raw", "-t", "-e", "8", "-x", "disk", file]).WaitReady(uri);
        return uri;
    }

    protected override void StopServer() => _peer?.Dispose();
}

/// <summary>The reference nbd-server (NetworkBlockDevice/nbd) over TCP, configured with a minimal config file.</summary>
[TestFixture, NonParallelizable]
public class NbdClientNbdServerTests : NbdClientContract
{
    private int _pid;

    protected override NbdUri StartServer(string dir, byte[] initial)
    {
        var nbdServer = Peers.Require("nbd-server", "apt-get install nbd-server");
        var file = Path.Combine(dir, "disk.img");
        File.WriteAllBytes(file, initial);
        int port = NbdTestUtil.FreeTcpPort();
        var config = Path.Combine(dir, "config");
        File.WriteAllText(config, $"[generic]\nlistenaddr = 127.0.0.1\nport = {port}\n[disk]\nexportname = {file}\nflush = true\nfua = true\ntrim = true\n");
        var pidFile = Path.Combine(dir, "pid");
        // nbd-server daemonizes (in -d debug mode it would serve only one connection); we kill it by its pid file.
        Peers.Run(nbdServer, ["-C", config, "-p", pidFile]).EnsureSuccess("nbd-server");
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (!File.Exists(pidFile) || File.ReadAllText(pidFile).Trim().Length == 0)
        {
            if (DateTime.UtcNow > deadline) Assert.Fail("nbd-server wrote no pid file");
            Thread.Sleep(20);
        }
        _pid = int.Parse(File.ReadAllText(pidFile).Trim());
        var uri = NbdUri.Parse($"nbd://127.0.0.1:{port}/disk");
        while (true)
        {
            try { using var s = new System.Net.Sockets.Socket(System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp); s.Connect(uri.ToEndPoint()); break; }
            catch (System.Net.Sockets.SocketException) when (DateTime.UtcNow < deadline) { Thread.Sleep(20); }
        }
        return uri;
    }

    protected override void StopServer()
    {
        if (_pid == 0) return;
        try
        {
            using var p = Process.GetProcessById(_pid);
            p.Kill(entireProcessTree: true);
            p.WaitForExit(5000);
        }
        catch (ArgumentException) { }
        catch (InvalidOperationException) { }
    }
}

/// <summary>Our own <see cref="NbdServer"/> with the memory backend (client and server proven against each other too).</summary>
[TestFixture, NonParallelizable]
public class NbdClientOwnServerTests : NbdClientContract
{
    private NbdServer? _server;

    protected override NbdUri StartServer(string dir, byte[] initial)
    {
        _server = new NbdServer(new MemoryNbdExportBackend((byte[])initial.Clone()));
        var uri = NbdUri.ForUnix(Path.Combine(dir, "own.sock"));
        _server.ListenUnix(uri.SocketPath!);
        return uri;
    }

    protected override void StopServer() => _server?.DisposeAsync().AsTask().GetAwaiter().GetResult();
}
