using BlkTap.Trace;
using NUnit.Framework;

namespace BlkTap.Trace.Tests;

public class MsrCsvImporterTests : TraceTestBase
{
    private const string Excerpt =
        "128166372003061629,hm,1,Read,3313713152,65536,71372\n" +
        "128166372016382155,hm,1,Write,3013976064,4096,2486\n" +
        "128166372026382245,hm,0,Write,1782640640,24576,29227\n";

    [Test]
    public void Read_Excerpt_TimesRelativeToFirstInNanoseconds()
    {
        var path = PathOf("hm_1.csv");
        File.WriteAllText(path, Excerpt);
        var records = MsrCsvImporter.Instance.Read(path).ToArray();
        Assert.That(records, Is.EqualTo(new[]
        {
            Rec(0, 7_137_200, 1, BlkifOperation.Read, 3313713152 / 512, 65536),
            Rec(1_332_052_600, 1_332_052_600 + 248_600, 1, BlkifOperation.Write, 3013976064 / 512, 4096),
            Rec(2_332_061_600, 2_332_061_600 + 2_922_700, 0, BlkifOperation.Write, 1782640640 / 512, 24576),
        }));
        Assert.That(TraceFormats.Detect(path), Is.EqualTo(TraceFormat.Msr));
    }

    [Test]
    public void Read_WithColumnHeader_HeaderSkipped()
    {
        var records = MsrCsvImporter.Instance.Read(new StringReader("Timestamp,Hostname,DiskNumber,Type,Offset,Size,ResponseTime\n" + Excerpt), "h").ToArray();
        Assert.That(records, Has.Length.EqualTo(3));
    }

    [TestCase("128166372016382155,hm,1,Flush,0,4096,2486", "Type 'Flush'")]
    [TestCase("128166372016382155,hm,1,Write,3013976064,4096", "missing")]
    [TestCase("128166372016382155,hm,1,Write,3013976065,4096,1", "multiple of 512")]
    [TestCase("128166372016382155,hm,x,Write,0,4096,1", "DiskNumber")]
    [TestCase("128166372000000000,hm,1,Write,0,4096,1", "earlier than the first record")]
    public void Read_BadLine_ErrorNamesFileAndLine(string bad, string fragment)
    {
        var path = PathOf("bad.csv");
        File.WriteAllText(path, Excerpt + bad + "\n");
        var e = Assert.Throws<TraceFormatException>(() => MsrCsvImporter.Instance.Read(path).ToArray())!;
        Assert.That(e.Message, Does.Contain(path).And.Contain("line 4").And.Contain(fragment));
    }
}

public class FioIologImporterTests : TraceTestBase
{
    [Test]
    public void Read_Version2_WaitSetsClockInMilliseconds()
    {
        var path = PathOf("v2.log");
        File.WriteAllText(path,
            "fio version 2 iolog\n/dev/sdb add\n/dev/sdc add\n/dev/sdb open\n/dev/sdc open\n" +
            "/dev/sdb write 0 4096\n/dev/sdb wait 5 0\n/dev/sdc read 4096 8192\n/dev/sdb sync 0 0\n" +
            "/dev/sdb trim 8192 4096\n/dev/sdb datasync 0 0\n/dev/sdb close\n/dev/sdc close\n");
        var records = FioIologImporter.Instance.Read(path).ToArray();
        Assert.That(records, Is.EqualTo(new[]
        {
            Rec(0, 0, 0, BlkifOperation.Write, 0, 4096, completed: false),
            Rec(5_000_000, 0, 1, BlkifOperation.Read, 8, 8192, completed: false),
            Rec(5_000_000, 0, 0, BlkifOperation.FlushDiskCache, 0, 0, completed: false),
            Rec(5_000_000, 0, 0, BlkifOperation.Discard, 16, 4096, completed: false),
            Rec(5_000_000, 0, 0, BlkifOperation.FlushDiskCache, 0, 0, completed: false),
        }));
        Assert.That(TraceFormats.Detect(path), Is.EqualTo(TraceFormat.Fio));
    }

    [Test]
    public void Read_Version3AsFioWritesIt_TimestampsInMicroseconds()
    {
        // Shaped like fio 3.33's own --write_iolog output.
        var path = PathOf("v3.log");
        File.WriteAllText(path,
            "fio version 3 iolog\n28 /tmp/f add\n241 /tmp/f open\n245 /tmp/f write 0 4096\n" +
            "100355 /tmp/f write 4096 4096\n200504 /tmp/f read 8192 4096\n400796 /tmp/f close\n");
        var records = FioIologImporter.Instance.Read(path).ToArray();
        Assert.That(records, Is.EqualTo(new[]
        {
            Rec(245_000, 0, 0, BlkifOperation.Write, 0, 4096, completed: false),
            Rec(100_355_000, 0, 0, BlkifOperation.Write, 8, 4096, completed: false),
            Rec(200_504_000, 0, 0, BlkifOperation.Read, 16, 4096, completed: false),
        }));
    }

    [TestCase("fio version 1 iolog\n", 1, "not a fio iolog")]
    [TestCase("fio version 3 iolog\n1 /f add\n2 /f wait 5 0\n", 3, "'wait' is not allowed")]
    [TestCase("fio version 3 iolog\n1 /f add\n2 /f frobnicate 0 4096\n", 3, "unknown action 'frobnicate'")]
    [TestCase("fio version 3 iolog\n1 /f add\n2 /g read 0 4096\n", 3, "file '/g' was not added")]
    [TestCase("fio version 2 iolog\n/f add\n/f read 0\n", 3, "offset but no length")]
    [TestCase("fio version 2 iolog\n/f add\n/f read 100 4096\n", 3, "multiple of 512")]
    [TestCase("fio version 3 iolog\nabc /f add\n", 2, "timestamp")]
    [TestCase("fio version 2 iolog\n/f add\n/f write 0 -5\n", 3, "length")]
    public void Read_BadLine_ErrorNamesFileAndLine(string text, int line, string fragment)
    {
        var path = PathOf("bad.log");
        File.WriteAllText(path, text);
        var e = Assert.Throws<TraceFormatException>(() => FioIologImporter.Instance.Read(path).ToArray())!;
        Assert.That(e.Message, Does.Contain(path).And.Contain($"line {line}").And.Contain(fragment));
    }
}
