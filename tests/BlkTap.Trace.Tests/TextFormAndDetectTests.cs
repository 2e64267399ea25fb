using BlkTap.Trace;
using NUnit.Framework;

namespace BlkTap.Trace.Tests;

public class TextFormAndDetectTests : TraceTestBase
{
    [FsCheck.NUnit.Property(Arbitrary = [typeof(TraceArbitraries)], MaxTest = 50)]
    public bool TextRoundTrip_RandomRecords_ReadBackIdentical(TraceRecord[] records)
    {
        var sw = new StringWriter();
        TraceText.Write(records, sw);
        return TraceText.Instance.Read(new StringReader(sw.ToString()), "text").SequenceEqual(records);
    }

    [Test]
    public void Write_KnownRecords_DocumentedColumns()
    {
        var sw = new StringWriter();
        TraceText.Write([
            Rec(10, 25, 3, BlkifOperation.Write, 1000, 4096, hash: 0xdeadbeef),
            Rec(30, 30, 0, BlkifOperation.FlushDiskCache, 0, 0, BlkifStatus.NotSupported, completed: false),
        ], sw);
        Assert.That(sw.ToString(), Is.EqualTo(
            "# blktap-trace text v1\n# submit_ns complete_ns session op sector length status hash\n" +
            "10 25 3 write 1000 4096 ok 00000000deadbeef\n30 - 0 flush 0 0 eopnotsupp -\n"));
    }

    [TestCase("1 2 0 write 0 512 ok", "missing hash")]
    [TestCase("1 2 0 scribble 0 512 ok -", "unknown op 'scribble'")]
    [TestCase("1 2 0 read 0 512 fine -", "unknown status 'fine'")]
    [TestCase("x 2 0 read 0 512 ok -", "submit_ns")]
    [TestCase("1 2 0 read 0 512 ok 12", "hash")]
    public void Read_BadTextLine_ErrorNamesFileAndLine(string bad, string fragment)
    {
        var path = PathOf("t.txt");
        File.WriteAllText(path, TraceText.FirstLine + "\n" + TraceText.ColumnsLine + "\n1 2 0 read 0 512 ok -\n" + bad + "\n");
        var e = Assert.Throws<TraceFormatException>(() => TraceText.Instance.Read(path).ToArray())!;
        Assert.That(e.Message, Does.Contain(path).And.Contain("line 4").And.Contain(fragment));
    }

    [Test]
    public void Detect_EachFormat_Recognised()
    {
        var native = WriteNative(PathOf("n.btt"), [Rec(1, 2, 0, BlkifOperation.Read, 0, 512)]);
        var text = PathOf("t.txt");
        using (var w = new StreamWriter(text)) TraceText.Write([Rec(1, 2, 0, BlkifOperation.Read, 0, 512)], w);
        var fio = PathOf("f.log");
        File.WriteAllText(fio, "fio version 2 iolog\n/f add\n/f read 0 512\n");
        var msr = PathOf("m.csv");
        File.WriteAllText(msr, "128166372003061629,hm,1,Read,3313713152,65536,71372\n");
        var blk = PathOf("b.txt");
        File.WriteAllText(blk, "  8,0    3        1     0.000000000  4162  Q   W 1000 + 8 [dd]\n");
        Assert.Multiple(() =>
        {
            Assert.That(TraceFormats.Detect(native), Is.EqualTo(TraceFormat.Native));
            Assert.That(TraceFormats.Detect(text), Is.EqualTo(TraceFormat.Text));
            Assert.That(TraceFormats.Detect(fio), Is.EqualTo(TraceFormat.Fio));
            Assert.That(TraceFormats.Detect(msr), Is.EqualTo(TraceFormat.Msr));
            Assert.That(TraceFormats.Detect(blk), Is.EqualTo(TraceFormat.Blkparse));
            foreach (var p in new[] { native, text, fio, msr, blk })
                Assert.That(TraceFormats.Read(p).Count(), Is.EqualTo(1), p);
        });
    }

    [Test]
    public void Detect_UnknownOrMissing_ErrorNamesFile()
    {
        var path = PathOf("x.bin");
        File.WriteAllText(path, "hello world\n");
        var e = Assert.Throws<TraceFormatException>(() => TraceFormats.Detect(path))!;
        Assert.That(e.Message, Does.Contain(path).And.Contain("unrecognised trace format"));
        var missing = PathOf("nope");
        Assert.That(Assert.Throws<TraceFormatException>(() => TraceFormats.Detect(missing))!.Message, Does.Contain(missing).And.Contain("not found"));
        File.WriteAllText(path, "");
        Assert.That(Assert.Throws<TraceFormatException>(() => TraceFormats.Detect(path))!.Message, Does.Contain("empty"));
    }
}
