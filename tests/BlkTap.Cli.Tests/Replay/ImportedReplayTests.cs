using System.Text.Json;
using NUnit.Framework;

namespace BlkTap.Cli.Tests.Replay;

public class ImportedReplayTests : ReplayTestBase
{
    // blkparse default output: a write, a read of it, merged writes, a flush, a discard, a second device.
    private const string Blkparse =
        "  8,0    3        1     0.000000000  4162  Q   W 1000 + 8 [dd]\n" +
        "  8,0    0        1     0.000350112     0  C   W 1000 + 8 [0]\n" +
        "  8,0    1        1     0.000400000   977  Q   R 1000 + 16 [cat]\n" +
        "  8,0    0        2     0.000500000     0  C   R 1000 + 16 [0]\n" +
        "  8,0    2        1     0.000600000   211  Q FWS [kworker/2:1H]\n" +
        "  8,0    0        3     0.000900000     0  C  FN 0 [0]\n" +
        "  8,0    1        3     0.001000000  3001  Q  DS 1000 + 8 [fstrim]\n" +
        "  8,0    0        5     0.001500000     0  C  DS 1000 + 8 [0]\n" +
        "  8,0    1        4     0.001600000  3002  Q   R 996 + 16 [md5sum]\n" +
        "  8,0    0        6     0.001700000     0  C   R 996 + 16 [0]\n" +
        "  8,16   1        1     0.002000000  4162  Q   W 64 + 8 [dd]\n" +
        "  8,16   0        1     0.002100000     0  C   W 64 + 8 [0]\n" +
        "  8,16   1        2     0.002200000  4162  Q   R 60 + 16 [dd]\n" +
        "  8,16   0        2     0.002300000     0  C   R 60 + 16 [0]\n";

    private const string Msr =
        "128166372003061629,hm,1,Write,3313713152,65536,71372\n" +
        "128166372003161629,hm,1,Read,3313713152,65536,2486\n" +
        "128166372003261629,hm,0,Write,1782640640,24576,29227\n" +
        "128166372003361629,hm,0,Read,1782636544,32768,29227\n";

    private const string FioV2 =
        "fio version 2 iolog\n/dev/sdb add\n/dev/sdc add\n/dev/sdb open\n/dev/sdc open\n" +
        "/dev/sdb write 0 4096\n/dev/sdc write 0 8192\n/dev/sdb read 0 8192\n/dev/sdc read 4096 4096\n/dev/sdb sync 0 0\n" +
        "/dev/sdb trim 0 4096\n/dev/sdb read 0 4096\n/dev/sdb close\n/dev/sdc close\n";

    private const string FioV3 =
        "fio version 3 iolog\n28 /tmp/f add\n241 /tmp/f open\n245 /tmp/f write 0 4096\n" +
        "355 /tmp/f write 4096 4096\n504 /tmp/f read 0 12288\n600 /tmp/f datasync 0 0\n796 /tmp/f close\n";

    [TestCase("blkparse", Blkparse, 2, 3)]
    [TestCase("msr", Msr, 2, 2)]
    [TestCase("fio", FioV2, 2, 3)]
    [TestCase("fio", FioV3, 1, 1)]
    public void Replay_ImporterSampleWithVerify_PassesAndChecksEveryRead(string format, string text, int sessions, int reads)
    {
        var path = PathOf("sample." + format);
        File.WriteAllText(path, text);
        foreach (var f in new[] { "auto", format })
        {
            var (code, stdout, err) = Cli("replay", path, "--format", f, "--tap", "mem", "--timing", "fast", "--verify", "--json");
            Assert.That(code, Is.Zero, stdout + err);
            using var json = JsonDocument.Parse(stdout);
            var root = json.RootElement;
            Assert.That(root.GetProperty("sessions").GetInt32(), Is.EqualTo(sessions));
            Assert.That(root.GetProperty("verify").GetProperty("reads_checked").GetInt64(), Is.EqualTo(reads));
            Assert.That(root.GetProperty("verify").GetProperty("mismatches").GetInt64(), Is.Zero);
            Assert.That(root.GetProperty("ok").GetBoolean(), Is.True);
        }
    }

    [Test]
    public void Replay_Json_ExactlyOneObjectWithPercentilesPerOp()
    {
        var f = Capture("f.bt", 3);
        var (code, stdout, err) = Cli("replay", f, "--tap", "dump:trace=" + PathOf("g.bt"), "--tap", "mem", "--timing", "scale=0.5", "--qd", "4", "--json");
        Assert.That(code, Is.Zero, err);
        using var json = JsonDocument.Parse(stdout); // throws if anything else is on stdout (the dump tap prints to stderr here)
        var root = json.RootElement;
        Assert.That(root.GetProperty("completed").GetInt64(), Is.EqualTo(root.GetProperty("records").GetInt64()));
        Assert.That(root.GetProperty("iops").GetDouble(), Is.GreaterThan(0));
        foreach (var op in new[] { "read", "write" })
        {
            var lat = root.GetProperty("ops").GetProperty(op).GetProperty("latency_us");
            var values = new[] { "p50", "p90", "p99", "p99_9", "max" }.Select(p => lat.GetProperty(p).GetDouble()).ToArray();
            Assert.That(values[0], Is.GreaterThan(0), op);
            Assert.That(values, Is.Ordered, op);
        }
        Assert.That(err, Does.Contain("> "), "the dump tap's lines went to stderr");
    }

    [Test]
    public void Replay_OriginalTiming_TakesAtLeastTheTraceSpan()
    {
        var path = PathOf("slow.log");
        File.WriteAllText(path, "fio version 3 iolog\n1 /tmp/f add\n1 /tmp/f open\n1 /tmp/f write 0 4096\n300001 /tmp/f read 0 4096\n300002 /tmp/f close\n");
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var (code, stdout, err) = Cli("replay", path, "--tap", "mem", "--verify", "--json");
        Assert.That(code, Is.Zero, err);
        Assert.That(sw.Elapsed.TotalMilliseconds, Is.GreaterThanOrEqualTo(300));
        using var json = JsonDocument.Parse(stdout);
        Assert.That(json.RootElement.GetProperty("elapsed_s").GetDouble(), Is.GreaterThanOrEqualTo(0.3));
        var fast = Cli("replay", path, "--tap", "mem", "--timing", "fast", "--json");
        using var j2 = JsonDocument.Parse(fast.Out);
        Assert.That(j2.RootElement.GetProperty("elapsed_s").GetDouble(), Is.LessThan(0.3));
    }

    [Test]
    public void Replay_WritesFailing_ExitsOneNamingTheFailures()
    {
        var path = PathOf("w.log");
        File.WriteAllText(path, FioV3);
        var (code, stdout, _) = Cli("replay", path, "--tap", "mem:size=1M,readonly=true", "--timing", "fast");
        Assert.That(code, Is.EqualTo(1));
        Assert.That(stdout, Does.Contain("error: request #0 (write sector 0+8").And.Contain("FAILED"));
    }

    [Test]
    public void Replay_DiskSmallerThanTrace_ExitTwoNamingTheSizeNeeded()
    {
        var path = PathOf("big.csv");
        File.WriteAllText(path, Msr);
        var g = PathOf("g.bt");
        var (code, stdout, err) = Cli("replay", path, "--tap", $"dump:trace={g},quiet=true", "--tap", "mem:size=1G", "--timing", "fast");
        Assert.That(code, Is.EqualTo(2), stdout);
        Assert.That(err, Does.Contain(path).And.Contain("sector 6472224").And.Contain("nothing was replayed"));
        Assert.That(TraceFormats_RecordCount(g), Is.Zero);
    }

    private static long TraceFormats_RecordCount(string path) => BlkTap.Trace.TraceFormats.Read(path).LongCount();
}
