using System.Security.Cryptography;
using BlkTap.Nbd;
using BlkTap.Testing;
using BlkTap.Testing.Nbd;
using NUnit.Framework;

namespace BlkTap.Cli.Tests.Qcow2;

/// <summary>
/// Issue 20's "Checked by": <c>blktap nbd serve --tap qcow2</c> as a child process, written by fio with verification and
/// judged by qemu (qemu-img check, qemu-img compare, fio reading back through qemu-nbd); and an image qemu made over a
/// raw file reads the same through us as through qemu-nbd.
/// </summary>
[TestFixture, NonParallelizable]
public class Qcow2NbdServeTests
{
    private const int DiskBytes = 16 << 20;
    private string _dir = null!;

    private static string QemuImg => Peers.Require("qemu-img", "apt-get install -y qemu-utils (./test.sh installs it)");
    private static string QemuIo => Peers.Require("qemu-io", "apt-get install -y qemu-utils (./test.sh installs it)");
    private static string QemuNbd => Peers.Require("qemu-nbd", "apt-get install -y qemu-utils (./test.sh installs it)");
    private static string Fio => Peers.Require("fio", "apt-get install -y fio (./test.sh installs it)");
    private static string Nbdcopy => Peers.Require("nbdcopy", "apt-get install -y libnbd-bin (./test.sh installs it)");

    private string F(string name) => Path.Combine(_dir, name);
    private static string Uri(string socket) => $"nbd+unix:///?socket={socket}";

    [SetUp]
    public void SetUp() => _dir = NbdTestUtil.TempDir();

    [TearDown]
    public void TearDown() { try { Directory.Delete(_dir, true); } catch (IOException) { } }

    private BlktapServeProcess ServeOurs(string socket, string tap)
    {
        var p = new BlktapServeProcess("nbd", "serve", "--unix", socket, "--tap", tap);
        try { Assert.That(p.WaitReady(), Does.StartWith($"blktap: serving {tap} at {Uri(socket)} ({DiskBytes} bytes")); }
        catch { p.Dispose(); throw; } // a failed start must not leave the server running
        return p;
    }

    private BackgroundPeer ServeQemu(string socket, string image) =>
        // -r: read-only; -t: keep serving after a client leaves (fio's nbd engine connects more than once); -e: clients at once.
        new BackgroundPeer(QemuNbd, ["-r", "-t", "-e", "4", "-f", "qcow2", "-k", socket, image]).WaitReady(NbdUri.ForUnix(socket));

    private static string Sha(string path) => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(path)));

    /// <summary>fio writing random blocks of 512 B to 64 KiB with crc32c headers (and flushes), verifying them afterwards.</summary>
    private string[] FioJob(string name, string uri, long offset, bool verifyOnly) =>
    [
        $"--name={name}", "--ioengine=nbd", $"--uri={uri}", "--rw=randwrite", "--bsrange=512-64k", "--iodepth=16",
        $"--offset={offset}", "--size=6M", "--fsync=16", "--randseed=20", "--verify=crc32c", "--do_verify=1",
        "--verify_fatal=1", "--verify_state_save=0", "--output-format=terse", .. verifyOnly ? new[] { "--verify_only" } : [],
    ];

    [Test]
    public void Chain_FioVerifyThroughOurServer_QemuImgCheckCleanAndQemuReadsWhatFioVerified()
    {
        var img = QemuImg;
        var io = QemuIo;
        var fio = Fio;
        var nbdcopy = Nbdcopy;
        // base.raw <- mid.qcow2 (qemu's, 4 KiB clusters: data, zero, discarded and compressed clusters) <- top.qcow2 (ours, 64 KiB).
        File.WriteAllBytes(F("base.raw"), NbdTestUtil.RandomBytes(DiskBytes, 20));
        Peers.Run(img, ["create", "-q", "-f", "qcow2", "-o", "cluster_size=4096", "-b", "base.raw", "-F", "raw", F("mid.qcow2")]).EnsureSuccess("qemu-img create mid");
        Peers.Run(io, ["-f", "qcow2", "-c", "write -P 0x11 1M 3M", "-c", "write -z 5M 1M", "-c", "discard 7M 256k", "-c", "write -c -P 0x22 9M 64k",
            "-c", "write -P 0x33 12345 100000", F("mid.qcow2")]).EnsureSuccess("qemu-io mid");
        var made = Qcow2CommandTests.Blktap("qcow2", "create", "-b", "mid.qcow2", "-F", "qcow2", F("top.qcow2"));
        Assert.That(made.Rc, Is.EqualTo(0), made.Err);
        Peers.Run(img, ["convert", "-O", "raw", F("mid.qcow2"), F("before.raw")]).EnsureSuccess("qemu-img convert mid");
        string baseSha = Sha(F("base.raw")), midSha = Sha(F("mid.qcow2"));

        // Two fio clients at once on disjoint ranges, each writing and then verifying through our server.
        string ours = F("ours.sock");
        using (var serve = ServeOurs(ours, $"qcow2:path={F("top.qcow2")}"))
        {
            var a = Task.Run(() => Peers.Run(fio, FioJob("a", Uri(ours), 1 << 20, false), TimeSpan.FromMinutes(3), _dir));
            var b = Task.Run(() => Peers.Run(fio, FioJob("b", Uri(ours), 8 << 20, false), TimeSpan.FromMinutes(3), _dir));
            a.Result.EnsureSuccess("fio a (write and verify through blktap)");
            b.Result.EnsureSuccess("fio b (write and verify through blktap)");
            // The data fio verified, as our server serves it.
            Peers.Run(nbdcopy, [Uri(ours), F("verified.raw")]).EnsureSuccess("nbdcopy from blktap");
            Assert.That(serve.Terminate(), Is.EqualTo(0), serve.Output);
        }

        var check = Peers.Run(img, ["check", "-f", "qcow2", F("top.qcow2")]);
        Assert.That(check.ExitCode, Is.EqualTo(0), check.StdOut + check.StdErr);
        Assert.That(check.StdOut, Does.Contain("No errors were found").And.Not.Contain("leaked"), check.StdOut);
        Peers.Run(img, ["compare", "-f", "qcow2", "-F", "raw", F("top.qcow2"), F("verified.raw")]).EnsureSuccess("qemu-img compare top.qcow2 verified.raw");
        Assert.That(Sha(F("base.raw")), Is.EqualTo(baseSha), "base.raw untouched");
        Assert.That(Sha(F("mid.qcow2")), Is.EqualTo(midSha), "mid.qcow2 untouched");

        // Outside fio's ranges the disk still reads as the chain did before.
        var before = File.ReadAllBytes(F("before.raw"));
        var verified = File.ReadAllBytes(F("verified.raw"));
        foreach (var (from, to) in new[] { (0, 1 << 20), (7 << 20, 8 << 20), (14 << 20, DiskBytes) })
            Assert.That(verified.AsSpan(from, to - from).SequenceEqual(before.AsSpan(from, to - from)), Is.True, $"bytes {from}..{to} unchanged");

        // qemu-nbd serving our image: fio finds every block it wrote.
        string theirs = F("qemu.sock");
        using var qemu = ServeQemu(theirs, F("top.qcow2"));
        Peers.Run(fio, FioJob("a", Uri(theirs), 1 << 20, true), TimeSpan.FromMinutes(3), _dir).EnsureSuccess("fio a --verify_only through qemu-nbd");
        Peers.Run(fio, FioJob("b", Uri(theirs), 8 << 20, true), TimeSpan.FromMinutes(3), _dir).EnsureSuccess("fio b --verify_only through qemu-nbd");
    }

    [Test]
    public void QemuImageOverRaw_ServedByUsAndByQemuNbd_ReadsTheSame()
    {
        var img = QemuImg;
        var io = QemuIo;
        var nbdcopy = Nbdcopy;
        File.WriteAllBytes(F("base.raw"), NbdTestUtil.RandomBytes(DiskBytes, 21));
        Peers.Run(img, ["create", "-q", "-f", "qcow2", "-b", "base.raw", "-F", "raw", F("top.qcow2")]).EnsureSuccess("qemu-img create");
        Peers.Run(io, ["-f", "qcow2", "-c", "write -P 0x5a 0 100k", "-c", "write -z 1M 192k", "-c", "discard 2M 128k", "-c", "write -c -P 0x6b 3M 128k",
            "-c", "write -P 0x7c 4194303 3", "-c", "write -z 5M 1k", F("top.qcow2")]).EnsureSuccess("qemu-io");
        string ours = F("ours.sock"), theirs = F("qemu.sock");
        using var serve = ServeOurs(ours, $"qcow2:path={F("top.qcow2")},readonly=true");
        using var qemu = ServeQemu(theirs, F("top.qcow2"));
        Peers.Run(img, ["compare", "-f", "raw", "-F", "raw", Uri(ours), Uri(theirs)]).EnsureSuccess("qemu-img compare of the two exports");
        Peers.Run(nbdcopy, [Uri(ours), F("ours.raw")]).EnsureSuccess("nbdcopy from blktap");
        Peers.Run(nbdcopy, [Uri(theirs), F("theirs.raw")]).EnsureSuccess("nbdcopy from qemu-nbd");
        var a = File.ReadAllBytes(F("ours.raw"));
        var b = File.ReadAllBytes(F("theirs.raw"));
        Assert.That(a.Length, Is.EqualTo(DiskBytes));
        Assert.That(a.AsSpan().SequenceEqual(b), Is.True, $"first difference at byte {a.AsSpan().CommonPrefixLength(b)}");
        Assert.That(a.AsSpan(6 << 20).SequenceEqual(File.ReadAllBytes(F("base.raw")).AsSpan(6 << 20)), Is.True, "untouched clusters read as base.raw");
        Assert.That(serve.Terminate(), Is.EqualTo(0), serve.Output);
    }

    [Test]
    public void WriteZeroesOverNbd_WholeClusters_BecomeZeroClustersWithoutGrowingTheFile()
    {
        var img = QemuImg;
        var io = QemuIo;
        File.WriteAllBytes(F("base.raw"), NbdTestUtil.RandomBytes(DiskBytes, 22));
        Peers.Run(img, ["create", "-q", "-f", "qcow2", "-b", "base.raw", "-F", "raw", F("top.qcow2")]).EnsureSuccess("qemu-img create");
        string ours = F("ours.sock");
        using (var serve = ServeOurs(ours, $"qcow2:path={F("top.qcow2")}"))
        {
            // write -z sends NBD_CMD_WRITE_ZEROES; the 1 KiB one covers no whole cluster.
            Peers.Run(io, ["-f", "raw", "-c", "write -z 1M 2M", "-c", "write -z 5M 1k", "-c", "flush", Uri(ours)]).EnsureSuccess("qemu-io write -z over NBD");
            Assert.That(serve.Terminate(), Is.EqualTo(0), serve.Output);
        }
        Peers.Run(img, ["check", "-f", "qcow2", F("top.qcow2")]).EnsureSuccess("qemu-img check");
        var map = Peers.Run(img, ["map", "--output=json", "-f", "qcow2", F("top.qcow2")]).EnsureSuccess("qemu-img map").StdOut;
        Assert.That(map, Does.Contain("\"start\": 1048576, \"length\": 2097152, \"depth\": 0, \"present\": true, \"zero\": true, \"data\": false"), map);
        Assert.That(new FileInfo(F("top.qcow2")).Length, Is.LessThan(1 << 20), "no data clusters for the 2 MiB of zeroes");
        var expected = File.ReadAllBytes(F("base.raw"));
        expected.AsSpan(1 << 20, 2 << 20).Clear();
        expected.AsSpan(5 << 20, 1024).Clear();
        File.WriteAllBytes(F("expected.raw"), expected);
        Peers.Run(img, ["compare", "-f", "qcow2", "-F", "raw", F("top.qcow2"), F("expected.raw")]).EnsureSuccess("qemu-img compare");
    }
}
