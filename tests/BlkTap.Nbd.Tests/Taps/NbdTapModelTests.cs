using BlkTap.Emulator;
using BlkTap.Examples;
using BlkTap.Nbd;
using BlkTap.Testing;
using BlkTap.Testing.Nbd;
using FsCheck;
using FsCheck.Fluent;
using NUnit.Framework;
using static BlkTap.Testing.Nbd.NbdTapTestSupport;
using BlkTap.Testing.Rigs;

namespace BlkTap.Nbd.Tests.Taps;

/// <summary>The nbd terminator against real NBD servers, checked by the emulator's model workload.</summary>
[TestFixture, NonParallelizable]
public class NbdTapModelTests
{
    private string _dir = null!;
    private BackgroundPeer? _memory;

    [SetUp]
    public void SetUp() => _dir = NbdTestUtil.TempDir();

    [TearDown]
    public void TearDown()
    {
        _memory?.Dispose();
        _memory = null;
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }

    private static WorkloadOptions Workload(int seed, int ops = 300) => new()
    {
        OperationsPerFrontend = ops, QueueDepth = 8, MaxSectors = 128, Seed = seed, WritePercent = 45, FlushPercent = 4, DiscardPercent = 4,
    };

    [FsCheck.NUnit.Property(MaxTest = 4)]
    public Property ModelWorkload_NbdkitMemory_EveryReadMatchesTheModel()
    {
        var uri = NbdUri.ForUnix(Path.Combine(_dir, "m.sock"));
        // FsCheck may build the property more than once per test: one nbdkit serves them all.
        var peer = _memory ??= Nbdkit(uri, "memory", "32M");
        return Prop.ForAll(Gen.Choose(1, 1_000_000).ToArbitrary(), seed =>
        {
            var (rig, taps, diags) = RigAsync([$"nbd:uri={uri}"]).GetAwaiter().GetResult();
            try
            {
                Assert.That(rig.Frontends[0].Sectors, Is.EqualTo(32UL * 2048), "the session is sized from the export");
                Assert.That(rig.Frontends[0].SupportsDiscard, Is.True, "nbdkit memory offers TRIM");
                var results = new VerifiedWorkload(Workload(seed)).RunAsync(rig).GetAwaiter().GetResult();
                Assert.That(results.Sum(r => r.Errors + r.Mismatches), Is.Zero, Describe(results, diags));
                Assert.That(results.Sum(r => r.Operations), Is.EqualTo(600));
            }
            finally { NbdTapTestSupport.DisposeAsync(rig, taps).GetAwaiter().GetResult(); }
        }).When(!peer.HasExited);
    }

    [Test]
    public async Task ModelWorkload_QemuNbdRawFile_EveryReadMatchesTheModelAndTheFileHoldsTheWrites()
    {
        var qemuNbd = Peers.Require("qemu-nbd");
        var file = Path.Combine(_dir, "q.raw");
        using (var f = File.Create(file)) f.SetLength(16 << 20);
        var uri = NbdUri.ForUnix(Path.Combine(_dir, "q.sock"));
        using var peer = new BackgroundPeer(qemuNbd, ["--persistent", "--shared=4", "-f", "raw", "--cache=writeback", "--discard=unmap", "-k", uri.SocketPath!, file]).WaitReady(uri);
        var (rig, taps, diags) = await RigAsync([$"nbd:uri={uri}"]);
        try
        {
            var results = await new VerifiedWorkload(Workload(7, 400)).RunAsync(rig);
            Assert.That(results.Sum(r => r.Errors + r.Mismatches), Is.Zero, Describe(results, diags));
            // The last frontend's writes went through qemu-nbd into the file: read it back through the tap and the file.
            var viaTap = new byte[64 * 1024];
            Assert.That(await rig.Frontends[0].ReadAsync(0, viaTap), Is.EqualTo(BlkifStatus.Okay));
            Assert.That(await rig.Frontends[0].FlushAsync(), Is.EqualTo(BlkifStatus.Okay));
            var onDisk = new byte[viaTap.Length];
            using (var f = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.ReadWrite)) f.ReadExactly(onDisk);
            Assert.That(onDisk, Is.EqualTo(viaTap));
        }
        finally { await NbdTapTestSupport.DisposeAsync(rig, taps); }
    }

    [Test]
    public async Task ModelWorkload_NbdServer_EveryReadMatchesTheModel()
    {
        var nbdServer = Peers.Require("nbd-server", "apt-get install nbd-server");
        var file = Path.Combine(_dir, "n.raw");
        using (var f = File.Create(file)) f.SetLength(16 << 20);
        int port = NbdTestUtil.FreeTcpPort();
        var config = Path.Combine(_dir, "config");
        File.WriteAllText(config, $"[generic]\nlistenaddr = 127.0.0.1\nport = {port}\n[disk]\nexportname = {file}\nflush = true\nfua = true\ntrim = true\n");
        var pidFile = Path.Combine(_dir, "pid");
        // nbd-server daemonizes; it is killed through its pid file.
        Peers.Run(nbdServer, ["-C", config, "-p", pidFile]).EnsureSuccess("nbd-server");
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (!File.Exists(pidFile) || File.ReadAllText(pidFile).Trim().Length == 0)
        {
            if (DateTime.UtcNow > deadline) Assert.Fail("nbd-server wrote no pid file");
            await Task.Delay(20);
        }
        int pid = int.Parse(File.ReadAllText(pidFile).Trim());
        try
        {
            var uri = NbdUri.Parse($"nbd://127.0.0.1:{port}/disk");
            while (true)
            {
                try { using var probe = new System.Net.Sockets.Socket(System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp); probe.Connect(uri.ToEndPoint()); break; }
                catch (System.Net.Sockets.SocketException) when (DateTime.UtcNow < deadline) { await Task.Delay(20); }
            }
            var (rig, taps, diags) = await RigAsync([$"nbd:uri={uri}"]);
            try
            {
                Assert.That(rig.Frontends[0].Sectors, Is.EqualTo(16UL * 2048), "the session is sized from nbd-server's export");
                // NOTE: nbd-server's TRIM only punches whole file-system blocks: a trimmed range reads as
                // zeroes or as its old data (the NBD protocol leaves it undefined), so trimmed sectors are not compared.
                var w = Workload(11, 300);
                w.DiscardZeroesData = false;
                var results = await new VerifiedWorkload(w).RunAsync(rig);
                Assert.That(results.Sum(r => r.Errors + r.Mismatches), Is.Zero, Describe(results, diags));
            }
            finally { await NbdTapTestSupport.DisposeAsync(rig, taps); }
        }
        finally
        {
            try { using var p = System.Diagnostics.Process.GetProcessById(pid); p.Kill(entireProcessTree: true); p.WaitForExit(5000); }
            catch (ArgumentException) { }
            catch (InvalidOperationException) { }
        }
    }

    [Test]
    public async Task ModelWorkload_ErrorFilter_SomeRequestsFailWithErrorAndTheRestMatchTheModel()
    {
        var uri = NbdUri.ForUnix(Path.Combine(_dir, "e.sock"));
        var trigger = Path.Combine(_dir, "errors-on");
        // error-file: errors start only once the file exists, so the workload's initial read of its slice succeeds.
        using var peer = Nbdkit(uri, "--filter=error", "memory", "32M", "error=EIO", "error-rate=20%", $"error-file={trigger}");
        // One frontend: the trigger appears after its first operation, so no other frontend's initial read can fail.
        var (rig, taps, diags) = await RigAsync([$"nbd:uri={uri}"], frontends: 1);
        try
        {
            var options = Workload(3, 400);
            // A failed write leaves its range unknown. At most 64 sectors is one ring request (11 pages) and so one NBD
            // command, which nbdkit fails as a whole; larger writes are several ring requests, and one may fail alone.
            options.MaxSectors = 64;
            options.Progress = () => { if (!File.Exists(trigger)) File.WriteAllText(trigger, ""); };
            var results = await new VerifiedWorkload(options).RunAsync(rig);
            long errors = results.Sum(r => r.Errors), ops = results.Sum(r => r.Operations);
            Assert.That(results.Sum(r => r.Mismatches), Is.Zero, Describe(results, diags));
            Assert.That(errors, Is.InRange(ops / 10, ops * 3 / 10), "about 20% of requests get ERROR");
            Assert.That(ops, Is.EqualTo(400), "every request was answered");
        }
        finally { await NbdTapTestSupport.DisposeAsync(rig, taps); }
    }

    [Test]
    public async Task DumpOverNbd_ReadOnlyExport_WritesGetErrorReadsWork()
    {
        var uri = NbdUri.ForUnix(Path.Combine(_dir, "r.sock"));
        using var peer = Nbdkit(uri, "--readonly", "pattern", "8M");
        var dump = new StringWriter();
        var (rig, taps, diags) = await RigAsync(["dump", $"nbd:uri={uri}"], frontends: 1, output: dump);
        try
        {
            var front = rig.Frontends[0];
            Assert.That(front.IsReadOnly, Is.True, "NBD_FLAG_READ_ONLY makes the disk read-only");
            Assert.That(await front.WriteAsync(8, new byte[4096]), Is.EqualTo(BlkifStatus.Error));
            var data = new byte[8192];
            Assert.That(await front.ReadAsync(16, data), Is.EqualTo(BlkifStatus.Okay));
            // nbdkit pattern: each 8-byte word holds its own big-endian offset.
            Assert.That(System.Buffers.Binary.BinaryPrimitives.ReadUInt64BigEndian(data.AsSpan(4096)), Is.EqualTo(16UL * 512 + 4096));
            var text = dump.ToString();
            Assert.That(text, Does.Contain("Write").And.Contain("Read"), "dump saw the requests on their way to nbd");
            Assert.That(text, Does.Contain("status=Error"), "dump saw the write's ERROR");
        }
        finally { await NbdTapTestSupport.DisposeAsync(rig, taps); }
    }

    [Test]
    public async Task CowOverNbd_ReadOnlyBase_WorkloadMatchesModelAndBaseIsUntouched()
    {
        // The 2005 Xen blktap's blkcowgnbd (tools/blktap/README): copy-on-write over a read-only remote base.
        var uri = NbdUri.ForUnix(Path.Combine(_dir, "c.sock"));
        using var peer = Nbdkit(uri, "--readonly", "memory", "16M");
        var overlay = Path.Combine(_dir, "ov.cow");
        var (rig, taps, diags) = await RigAsync([$"cow:overlay={overlay}", $"nbd:uri={uri}"]);
        try
        {
            var results = await new VerifiedWorkload(Workload(5)).RunAsync(rig);
            Assert.That(results.Sum(r => r.Errors + r.Mismatches), Is.Zero, Describe(results, diags));
        }
        finally { await NbdTapTestSupport.DisposeAsync(rig, taps); }
        using var check = new NbdBlockingClient(uri);
        var buffer = new byte[1 << 20];
        for (ulong at = 0; at < 16 << 20; at += (ulong)buffer.Length)
        {
            Assert.That(check.Read(at, buffer), Is.Zero);
            Assert.That(buffer.AsSpan().IndexOfAnyExcept((byte)0), Is.EqualTo(-1), $"the read-only base changed near byte {at}");
        }
    }
}
