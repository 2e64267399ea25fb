using BlkTap.Trace;
using NUnit.Framework;

namespace BlkTap.Cli.Tests.Replay;

public class BadTraceTests : ReplayTestBase
{
    private string Good()
    {
        var path = PathOf("good.bt");
        using var w = TraceWriter.Create(path);
        for (uint i = 0; i < 40; i++)
            w.Append(new TraceRecord(i * 1000, i * 1000 + 500, i % 2, i % 3 == 0 ? BlkifOperation.Read : BlkifOperation.Write, i * 8, 4096, BlkifStatus.Okay));
        w.Complete();
        return path;
    }

    private (int Code, string Err, string Captured) ReplayWithCapture(string trace)
    {
        var g = PathOf("g.bt");
        var (code, _, err) = Cli("replay", trace, "--tap", $"dump:trace={g},quiet=true", "--tap", "mem", "--timing", "fast");
        return (code, err, g);
    }

    private void AssertRejected(string trace, params string[] fragments)
    {
        var (code, err, g) = ReplayWithCapture(trace);
        Assert.That(code, Is.EqualTo(2), err);
        var lines = err.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.That(lines, Has.Length.EqualTo(1), err);
        Assert.That(lines[0], Does.StartWith("blktap: " + trace + ": "));
        foreach (var f in fragments) Assert.That(lines[0], Does.Contain(f));
        Assert.That(File.Exists(g), Is.False, "the chain was never built: nothing was replayed");
    }

    [Test]
    public void Replay_TruncatedNative_ExitTwoWithByteOffset()
    {
        var good = Good();
        var bytes = File.ReadAllBytes(good);
        var path = PathOf("truncated.bt");
        File.WriteAllBytes(path, bytes[..(bytes.Length - 50)]);
        AssertRejected(path, "at byte offset", "truncated");
    }

    [Test]
    public void Replay_CorruptRecord_ExitTwoWithItsOffset()
    {
        var bytes = File.ReadAllBytes(Good());
        int headerSize = BitConverter.ToInt32(bytes, 16);
        int offset = headerSize + 48 * 30 + 16; // the sector of record #30
        bytes[offset] ^= 0x40;
        var path = PathOf("corrupt.bt");
        File.WriteAllBytes(path, bytes);
        AssertRejected(path, $"at byte offset {headerSize + 48 * 30}:", "#30");
    }

    [Test]
    public void Replay_UnknownVersion_ExitTwoNamingTheVersion()
    {
        var bytes = File.ReadAllBytes(Good());
        bytes[8] = 9;
        var path = PathOf("v9.bt");
        File.WriteAllBytes(path, bytes);
        AssertRejected(path, "at byte offset 8", "version 9");
    }

    [TestCase("fio version 3 iolog\n1 /f add\n1 /f open\n2 /f write 0 4096\n3 /f frobnicate 0 4096\n", "line 5")]
    [TestCase("# blktap-trace text v1\n0 10 0 write 0 4096 ok -\n20 30 0 read 0 banana ok -\n", "line 3")]
    [TestCase("128166372003061629,hm,1,Read,0,4096,10\n128166372003061630,hm,1,Write,0,4096\n", "line 2")]
    public void Replay_LineThatDoesNotParse_ExitTwoWithLineNumber(string text, string where)
    {
        var path = PathOf("bad.txt");
        File.WriteAllText(path, text);
        AssertRejected(path, where);
    }

    [Test]
    public void Replay_RecordTooLargeToReplay_ExitTwoNamingTheRecord()
    {
        var path = PathOf("huge.bt");
        using (var w = TraceWriter.Create(path))
        {
            w.Append(new TraceRecord(0, 1, 0, BlkifOperation.Write, 0, 4096, BlkifStatus.Okay));
            w.Append(new TraceRecord(5, 6, 0, BlkifOperation.Read, 0, 1u << 30, BlkifStatus.Okay));
        }
        AssertRejected(path, "record 1", "length 1073741824");
    }

    [Test]
    public void Replay_MissingFileOrUnknownFormat_ExitTwo()
    {
        var (code, _, err) = Cli("replay", PathOf("nope.bt"), "--tap", "mem");
        Assert.That(code, Is.EqualTo(2));
        Assert.That(err, Does.Contain("nope.bt").And.Contain("not found"));
        var path = PathOf("x.bt");
        File.WriteAllText(path, "hello\n");
        AssertRejected(path, "unrecognised trace format");
        var (code2, _, err2) = Cli("replay", path, "--format", "tar", "--tap", "mem");
        Assert.That(code2, Is.EqualTo(2));
        Assert.That(err2, Does.Contain("--input-format 'tar'"));
    }

    [Test]
    public void TraceInfoAndExport_CorruptTrace_ExitTwoAndNoOutputFile()
    {
        var bytes = File.ReadAllBytes(Good());
        var path = PathOf("t.bt");
        File.WriteAllBytes(path, bytes[..^10]);
        var (code, _, err) = Cli("trace", "info", path);
        Assert.That(code, Is.EqualTo(2));
        Assert.That(err, Does.Contain(path).And.Contain("byte offset"));
        var outPath = PathOf("out.log");
        (code, _, err) = Cli("trace", "export", path, "--format", "fio", "-o", outPath, "--target", "/dev/null");
        Assert.That(code, Is.EqualTo(2));
        Assert.That(err, Does.Contain(path));
        Assert.That(Directory.GetFiles(Dir).Select(Path.GetFileName), Is.EquivalentTo(new[] { "good.bt", "t.bt" }));
    }
}
