using System.Net.Sockets;
using BlkTap.Cli;
using BlkTap.Nbd;
using BlkTap.Testing;
using BlkTap.Testing.Nbd;
using NUnit.Framework;
using BlkTap.Testing.Rigs;

namespace BlkTap.Cli.Tests.Nbd;

/// <summary><c>blktap nbd serve</c> as a child process, driven by real NBD clients.</summary>
[TestFixture, NonParallelizable]
public class NbdServeTests
{
    private string _dir = null!;
    private string _disk = null!;
    private string _sock = null!;
    private string Uri => $"nbd+unix:///?socket={_sock}";

    [SetUp]
    public void SetUp()
    {
        _dir = NbdTestUtil.TempDir();
        _disk = Path.Combine(_dir, "disk.raw");
        _sock = Path.Combine(_dir, "s.sock");
    }

    [TearDown]
    public void TearDown() { try { Directory.Delete(_dir, true); } catch (IOException) { } }

    private BlktapServeProcess Serve(int sizeBytes, params string[] chain)
    {
        File.WriteAllBytes(_disk, NbdTestUtil.RandomBytes(sizeBytes, sizeBytes));
        var args = new List<string> { "nbd", "serve", "--unix", _sock };
        foreach (var t in chain.Length == 0 ? [$"img:path={_disk}"] : chain) { args.Add("--tap"); args.Add(t); }
        var p = new BlktapServeProcess([.. args]);
        var line = p.WaitReady();
        Assert.That(line, Is.EqualTo($"blktap: serving {string.Join(" -> ", chain.Length == 0 ? [$"img:path={_disk}"] : chain)} at {Uri} ({sizeBytes} bytes)"));
        return p;
    }

    [Test]
    public void Img_NbdinfoQemuImgQemuIo_SizeIdenticalPatternsAndCleanSigterm()
    {
        var nbdinfo = Peers.Require("nbdinfo");
        var qemuImg = Peers.Require("qemu-img");
        var qemuIo = Peers.Require("qemu-io");
        using var serve = Serve(8 << 20);
        Assert.That(Peers.Run(nbdinfo, ["--size", Uri]).EnsureSuccess("nbdinfo").StdOut.Trim(), Is.EqualTo((8 << 20).ToString()));
        Peers.Run(qemuImg, ["compare", "-f", "raw", "-F", "raw", _disk, Uri]).EnsureSuccess("qemu-img compare (identical)");
        // Unaligned pattern write/read (read-modify-write inside the export).
        Peers.Run(qemuIo, ["-f", "raw", "-c", "write -P 0x5a 1000 70000", "-c", "read -P 0x5a 1000 70000", "-c", "flush", Uri]).EnsureSuccess("qemu-io pattern");
        Assert.That(serve.Terminate(), Is.EqualTo(CliApp.Ok), serve.Output);
        Assert.That(File.Exists(_sock), Is.False, "the socket is removed");
        var bytes = File.ReadAllBytes(_disk);
        Assert.That(bytes.AsSpan(1000, 70000).IndexOfAnyExcept((byte)0x5a), Is.EqualTo(-1), "the pattern reached disk.raw");
        Assert.That(bytes[999], Is.EqualTo(NbdTestUtil.RandomBytes(8 << 20, 8 << 20)[999]), "bytes around an unaligned write are kept");
    }

    [Test]
    public void Img_NbdcopyRoundTrip64MiB_DownloadEqualsUploadAndDisk()
    {
        var nbdcopy = Peers.Require("nbdcopy");
        using var serve = Serve(64 << 20);
        var upload = Path.Combine(_dir, "up.raw");
        var download = Path.Combine(_dir, "down.raw");
        File.WriteAllBytes(upload, NbdTestUtil.RandomBytes(64 << 20, 99));
        Peers.Run(nbdcopy, [upload, Uri]).EnsureSuccess("nbdcopy upload");
        Peers.Run(nbdcopy, [Uri, download]).EnsureSuccess("nbdcopy download");
        Assert.That(serve.Terminate(), Is.EqualTo(CliApp.Ok), serve.Output);
        var up = File.ReadAllBytes(upload);
        Assert.That(File.ReadAllBytes(download).AsSpan().SequenceEqual(up), Is.True, "download equals upload");
        Assert.That(File.ReadAllBytes(_disk).AsSpan().SequenceEqual(up), Is.True, "disk.raw equals upload");
    }

    [Test]
    public void Img_FioRandwriteVerify_PassesWithTwoClientsAtOnce()
    {
        var fio = Peers.Require("fio");
        using var serve = Serve(32 << 20);
        ProcessResult Job(string name, string offset) => Peers.Run(fio, [$"--name={name}", "--ioengine=nbd", $"--uri={Uri}", "--rw=randwrite", "--bs=4k", "--iodepth=16",
            $"--offset={offset}", "--size=8M", "--verify=crc32c", "--do_verify=1", "--output-format=terse"], TimeSpan.FromMinutes(2));
        var a = Task.Run(() => Job("a", "0"));
        var b = Task.Run(() => Job("b", "16M"));
        a.Result.EnsureSuccess("fio client a");
        b.Result.EnsureSuccess("fio client b");
        Assert.That(serve.Terminate(), Is.EqualTo(CliApp.Ok), serve.Output);
    }

    [Test]
    public void GarbageClient_IsDropped_WhileAnotherClientKeepsWorking()
    {
        var nbdinfo = Peers.Require("nbdinfo");
        using var serve = Serve(4 << 20);
        using var good = new NbdBlockingClient(NbdUri.ForUnix(_sock));
        Assert.That(good.Write(4096, NbdTestUtil.RandomBytes(4096, 1)), Is.Zero);
        using (var bad = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified))
        {
            bad.Connect(new UnixDomainSocketEndPoint(_sock));
            bad.Send(NbdTestUtil.RandomBytes(4096, 2));
            bad.ReceiveTimeout = 60_000;
            var buf = new byte[4096];
            int n;
            try { while ((n = bad.Receive(buf)) > 0) { } } catch (SocketException) { }
        }
        var back = new byte[4096];
        Assert.That(good.Read(4096, back), Is.Zero);
        Assert.That(back, Is.EqualTo(NbdTestUtil.RandomBytes(4096, 1)));
        Assert.That(Peers.Run(nbdinfo, ["--size", Uri]).EnsureSuccess("nbdinfo after garbage").StdOut.Trim(), Is.EqualTo((4 << 20).ToString()));
        good.Dispose();
        Assert.That(serve.Terminate(), Is.EqualTo(CliApp.Ok), serve.Output);
    }

    [Test]
    public void SigtermDuringWrites_ExitsZeroAndEveryAcknowledgedWriteIsInTheFile()
    {
        var fio = Peers.Require("fio");
        using var serve = Serve(16 << 20);
        // fio keeps the server busy; our own client records exactly which writes were acknowledged.
        var load = Task.Run(() => Peers.Run(fio, ["--name=load", "--ioengine=nbd", $"--uri={Uri}", "--rw=randwrite", "--bs=4k", "--iodepth=16",
            "--offset=8M", "--size=8M", "--time_based", "--runtime=30"], TimeSpan.FromMinutes(1)));
        var acked = new List<(ulong Offset, byte[] Data)>();
        var client = new NbdBlockingClient(NbdUri.ForUnix(_sock)) { Timeout = TimeSpan.FromSeconds(60) };
        string? stoppedBy = null;
        var writer = Task.Run(() =>
        {
            for (int i = 0; i < 2048; i++)
            {
                var data = NbdTestUtil.RandomBytes(4096, 1000 + i);
                ulong at = (ulong)(i % 2048) * 4096;
                int e;
                try { e = client.Write(at, data); }
                catch (Exception ex) { stoppedBy = ex.Message; return; }
                if (e != 0) { stoppedBy = NbdError.Name(e); return; }
                lock (acked) acked.Add((at, data));
            }
        });
        var until = DateTime.UtcNow.AddSeconds(60);
        while (DateTime.UtcNow < until && !writer.IsCompleted) { lock (acked) if (acked.Count >= 64) break; Thread.Sleep(10); }
        int exit = serve.Terminate();
        writer.Wait(TimeSpan.FromSeconds(60));
        client.Dispose();
        load.Wait(TimeSpan.FromSeconds(60));
        Assert.That(exit, Is.EqualTo(CliApp.Ok), serve.Output);
        var disk = File.ReadAllBytes(_disk);
        lock (acked)
        {
            Assert.That(acked, Is.Not.Empty, $"some writes were acknowledged before SIGTERM (writer stopped by: {stoppedBy})");
            foreach (var (at, data) in acked)
                Assert.That(disk.AsSpan((int)at, data.Length).SequenceEqual(data), Is.True, $"acknowledged write at {at} is in disk.raw");
        }
    }

    [Test]
    public void NbdOverNbd_ServeProxiesNbdkit_NbdcopyRoundTrip()
    {
        var nbdcopy = Peers.Require("nbdcopy");
        var upstream = NbdUri.ForUnix(Path.Combine(_dir, "up.sock"));
        using var nbdkit = NbdTapTestSupport.Nbdkit(upstream, "memory", "32M");
        var args = new[] { "nbd", "serve", "--unix", _sock, "--tap", "dump:quiet=true", "--tap", $"nbd:uri={upstream}" };
        using var serve = new BlktapServeProcess(args);
        Assert.That(serve.WaitReady(), Does.EndWith($"({32 << 20} bytes)"));
        var src = Path.Combine(_dir, "src.raw");
        var dst = Path.Combine(_dir, "dst.raw");
        File.WriteAllBytes(src, NbdTestUtil.RandomBytes(32 << 20, 5));
        Peers.Run(nbdcopy, [src, Uri]).EnsureSuccess("nbdcopy upload through blktap to nbdkit");
        Peers.Run(nbdcopy, [upstream.ToString(), dst]).EnsureSuccess("nbdcopy download straight from nbdkit");
        Assert.That(File.ReadAllBytes(dst).AsSpan().SequenceEqual(File.ReadAllBytes(src)), Is.True);
        Assert.That(serve.Terminate(), Is.EqualTo(CliApp.Ok), serve.Output);
    }

    [TestCase(new[] { "nbd", "serve", "--tap", "mem" }, "exactly one of --unix")]
    [TestCase(new[] { "nbd", "serve", "--unix", "/tmp/x.sock", "--port", "1", "--tap", "mem" }, "exactly one of --unix")]
    [TestCase(new[] { "nbd", "serve", "--unix", "/tmp/x.sock", "--tap", "img:path=/nonexistent/disk.raw" }, "does not exist")]
    [TestCase(new[] { "nbd", "serve", "--unix", "/tmp/x.sock", "--tap", "nbd" }, "missing option 'uri")]
    public void BadUsage_ExitsTwoWithOneLine(string[] args, string message)
    {
        var err = new StringWriter();
        Assert.That(CliApp.Run(args, new StringWriter(), err), Is.EqualTo(CliApp.BadInput));
        Assert.That(err.ToString(), Does.StartWith("blktap: ").And.Contain(message));
    }
}
