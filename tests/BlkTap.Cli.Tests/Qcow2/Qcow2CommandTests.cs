using System.Buffers.Binary;
using System.Text.Json;
using BlkTap.Testing;
using NUnit.Framework;

namespace BlkTap.Cli.Tests.Qcow2;

/// <summary>
/// <c>blktap qcow2 create</c> and <c>blktap qcow2 check</c>, judged by qemu-img: images we create are clean and have
/// what was asked; our check agrees with qemu-img check on clean, leaking and corrupt images; bad input exits 2 with one line.
/// </summary>
public class Qcow2CommandTests
{
    private static string QemuImgPath => Peers.Require("qemu-img", "apt-get install -y qemu-utils (./test.sh installs it)");

    internal static (int Rc, string Out, string Err) Blktap(params string[] args)
    {
        var o = new StringWriter();
        var e = new StringWriter();
        int rc = CliApp.Run(args, o, e);
        return (rc, o.ToString(), e.ToString());
    }

    private static string TempDir()
    {
        var d = Path.Combine(Path.GetTempPath(), "blktap-q2cli-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(d);
        return d;
    }

    [TestCase("512", 512)]
    [TestCase("4K", 4096)]
    [TestCase("64K", 65536)]
    [TestCase("2M", 2 << 20)]
    public void Create_ClusterSize_QemuImgSeesACleanImageOfThatShape(string cluster, int bytes)
    {
        var img = QemuImgPath;
        var dir = TempDir();
        try
        {
            string path = Path.Combine(dir, "d.qcow2");
            var r = Blktap("qcow2", "create", path, "100M", "--cluster-size", cluster);
            Assert.That(r.Rc, Is.EqualTo(0), r.Err);
            Assert.That(Peers.Run(img, ["check", path]).ExitCode, Is.EqualTo(0));
            using var info = JsonDocument.Parse(Peers.Run(img, ["info", "--output=json", path]).EnsureSuccess("info").StdOut);
            Assert.That(info.RootElement.GetProperty("cluster-size").GetInt32(), Is.EqualTo(bytes));
            Assert.That(info.RootElement.GetProperty("virtual-size").GetInt64(), Is.EqualTo(100L << 20));
            Assert.That(info.RootElement.GetProperty("format-specific").GetProperty("data").GetProperty("compat").GetString(), Is.EqualTo("1.1"));
            Assert.That(Blktap("qcow2", "check", path).Rc, Is.EqualTo(0));
        }
        finally { Directory.Delete(dir, true); }
    }

    [Test]
    public void Create_RawBackingWithoutSize_SizeOfBackingAndReadsAsBacking()
    {
        var img = QemuImgPath;
        var dir = TempDir();
        try
        {
            var data = new byte[3 << 20];
            new Random(3).NextBytes(data);
            File.WriteAllBytes(Path.Combine(dir, "base.raw"), data);
            string path = Path.Combine(dir, "top.qcow2");
            var r = Blktap("qcow2", "create", "-b", "base.raw", "-F", "raw", path);
            Assert.That(r.Rc, Is.EqualTo(0), r.Err);
            Assert.That(Peers.Run(img, ["check", path]).ExitCode, Is.EqualTo(0));
            Assert.That(Peers.Run(img, ["compare", "-f", "qcow2", "-F", "raw", path, Path.Combine(dir, "base.raw")]).ExitCode, Is.EqualTo(0), "reads as its backing file");
        }
        finally { Directory.Delete(dir, true); }
    }

    /// <summary>A qemu-written image whose first data cluster's refcount is set to <paramref name="refcount"/> (and its COPIED flag cleared).</summary>
    private static string DamagedImage(string dir, ushort refcount, bool clearCopied)
    {
        var img = QemuImgPath;
        var io = Peers.Require("qemu-io", "apt-get install -y qemu-utils");
        string path = Path.Combine(dir, "d.qcow2");
        Peers.Run(img, ["create", "-q", "-f", "qcow2", "-o", "cluster_size=4096", path, "1M"]).EnsureSuccess("create");
        Peers.Run(io, ["-c", "write -P 0x7 0 16k", path]).EnsureSuccess("qemu-io");
        var b = File.ReadAllBytes(path);
        long l1 = (long)BinaryPrimitives.ReadUInt64BigEndian(b.AsSpan(40));
        long l2 = (long)(BinaryPrimitives.ReadUInt64BigEndian(b.AsSpan((int)l1)) & 0x00FF_FFFF_FFFF_FE00);
        long data = (long)(BinaryPrimitives.ReadUInt64BigEndian(b.AsSpan((int)l2)) & 0x00FF_FFFF_FFFF_FE00);
        long rt = (long)BinaryPrimitives.ReadUInt64BigEndian(b.AsSpan(48));
        long block = (long)BinaryPrimitives.ReadUInt64BigEndian(b.AsSpan((int)rt));
        BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan((int)(block + data / 4096 * 2)), refcount);
        if (clearCopied) b[(int)l2] &= 0x7F; // bit 63 of the big-endian L2 entry
        File.WriteAllBytes(path, b);
        return path;
    }

    [TestCase((ushort)1, false, 0, 0, "No errors")]
    [TestCase((ushort)2, false, 1, 2, "COPIED flag set but refcount 2")]
    [TestCase((ushort)2, true, 1, 3, "1 leaked clusters")]
    [TestCase((ushort)0, false, 1, 2, "errors were found")]
    public void Check_DataClusterRefcount_AgreesWithQemuImgCheck(ushort refcount, bool clearCopied, int ourRc, int qemuRc, string says)
    {
        var dir = TempDir();
        try
        {
            string path = DamagedImage(dir, refcount, clearCopied);
            var before = File.ReadAllBytes(path);
            Assert.That(Peers.Run(QemuImgPath, ["check", path]).ExitCode, Is.EqualTo(qemuRc), "qemu-img check's verdict");
            var r = Blktap("qcow2", "check", path);
            Assert.That(r.Rc, Is.EqualTo(ourRc), r.Out + r.Err);
            Assert.That(r.Out, Does.Contain(says));
            Assert.That(File.ReadAllBytes(path), Is.EqualTo(before), "check writes nothing");
        }
        finally { Directory.Delete(dir, true); }
    }

    [Test]
    public void BadInput_NotQcow2OrBadArguments_ExitTwoWithOneLine()
    {
        var dir = TempDir();
        try
        {
            string raw = Path.Combine(dir, "x.raw");
            File.WriteAllBytes(raw, new byte[4096]);
            foreach (var args in new[]
            {
                new[] { "qcow2", "check", raw },
                new[] { "qcow2", "check", Path.Combine(dir, "missing.qcow2") },
                new[] { "qcow2", "create", Path.Combine(dir, "a.qcow2"), "1M", "--cluster-size", "1000" },
                new[] { "qcow2", "create", raw, "1M" },
                new[] { "qcow2", "create", Path.Combine(dir, "b.qcow2") },
                new[] { "qcow2", "create", "-b", "nope.raw", Path.Combine(dir, "c.qcow2") },
                new[] { "run", "--deterministic", "--workload", "random:ops=5", "--tap", $"qcow2:path={raw}" },
            })
            {
                var r = Blktap(args);
                Assert.That(r.Rc, Is.EqualTo(2), string.Join(' ', args) + "\n" + r.Out + r.Err);
                Assert.That(r.Err.Trim().Split('\n'), Has.Length.EqualTo(1), r.Err);
                Assert.That(r.Err, Does.StartWith("blktap: "));
            }
            Assert.That(File.ReadAllBytes(raw), Is.EqualTo(new byte[4096]));
        }
        finally { Directory.Delete(dir, true); }
    }

    [Test]
    public void Help_Qcow2Verbs_ShowAnExample()
    {
        Assert.That(Blktap("qcow2", "create", "--help").Out, Does.Contain("Examples:\n").And.Contain("\n  blktap qcow2 create "));
        Assert.That(Blktap("qcow2", "check", "--help").Out, Does.Contain("Examples:\n").And.Contain("\n  blktap qcow2 check "));
    }
}
