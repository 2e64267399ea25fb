using System.Globalization;
using System.Text;
using BlkTap.Trace;
using NUnit.Framework;

namespace BlkTap.Trace.Tests;

public class BlkparseImporterTests : TraceTestBase
{
    // Formats one event exactly as blkparse_fmt.c process_default does:
    // "%3d,%-3d %2d %8d %5d.%09lu %5u %2s %3s " then the action's fields.
    private static string Ev(int major, int minor, int cpu, int seq, double seconds, int pid, string act, string rwbs, string rest)
    {
        var sec = (long)Math.Floor(seconds);
        var ns = (long)Math.Round((seconds - sec) * 1e9);
        return string.Format(CultureInfo.InvariantCulture, "{0,3},{1,-3} {2,2} {3,8} {4,5}.{5:D9} {6,5} {7,2} {8,3} {9}",
            major, minor, cpu, seq, sec, ns, pid, act, rwbs, rest);
    }

    private static string Sample()
    {
        var sb = new StringBuilder();
        void L(string s) => sb.Append(s).Append('\n');
        // dd writes 4 KiB at sector 1000 through the whole Q G P I U D C path.
        L(Ev(8, 0, 3, 1, 0.000000000, 4162, "Q", "W", "1000 + 8 [dd]"));
        L(Ev(8, 0, 3, 2, 0.000002381, 4162, "G", "W", "1000 + 8 [dd]"));
        L(Ev(8, 0, 3, 3, 0.000003012, 4162, "P", "N", "[dd]"));
        L(Ev(8, 0, 3, 4, 0.000004160, 4162, "I", "W", "1000 + 8 [dd]"));
        L(Ev(8, 0, 3, 5, 0.000005000, 4162, "UT", "N", "[dd] 1"));
        L(Ev(8, 0, 3, 6, 0.000006291, 4162, "D", "W", "1000 + 8 [dd]"));
        // A readahead read, completed out of order after the next write.
        L(Ev(8, 0, 1, 1, 0.000010000, 977, "Q", "RA", "2048 + 16 [cat]"));
        L(Ev(8, 0, 1, 2, 0.000011000, 977, "D", "RA", "2048 + 16 [cat]"));
        // Two sync writes merged into one request (M), completed by one C.
        L(Ev(8, 0, 2, 1, 0.000020000, 512, "Q", "WS", "5000 + 8 [jbd2/sda1-8]"));
        L(Ev(8, 0, 2, 2, 0.000021000, 512, "Q", "WS", "5008 + 8 [jbd2/sda1-8]"));
        L(Ev(8, 0, 2, 3, 0.000021500, 512, "M", "WS", "5008 + 8 [jbd2/sda1-8]"));
        L(Ev(8, 0, 0, 1, 0.000350112, 0, "C", "W", "1000 + 8 [0]"));
        L(Ev(8, 0, 0, 2, 0.000400000, 0, "C", "RA", "2048 + 16 [0]"));
        L(Ev(8, 0, 0, 3, 0.000500000, 0, "C", "WS", "5000 + 16 [0]"));
        // A cache flush (preflush, no data) from a kworker; the remap/message lines are ignored.
        L(Ev(8, 0, 2, 4, 0.000600000, 211, "Q", "FWS", "[kworker/2:1H]"));
        L(Ev(8, 0, 2, 5, 0.000600500, 211, "A", "W", "1050 + 8 <- (8,1) 2"));
        L(Ev(8, 0, 2, 6, 0.000600700, 211, "m", "N", "cfq211S / alloced"));
        L(Ev(8, 0, 0, 4, 0.000900000, 0, "C", "FN", "0 [0]"));
        // A discard from fstrim and a failed read.
        L(Ev(8, 0, 1, 3, 0.001000000, 3001, "Q", "DS", "8192 + 2048 [fstrim]"));
        L(Ev(8, 0, 1, 4, 0.001100000, 3002, "Q", "R", "9999 + 8 [md5sum]"));
        L(Ev(8, 0, 0, 5, 0.001500000, 0, "C", "DS", "8192 + 2048 [0]"));
        L(Ev(8, 0, 0, 6, 0.001600000, 0, "C", "R", "9999 + 8 [5]"));
        // A second disk, and a request that never completes within the trace.
        L(Ev(8, 16, 1, 1, 0.002000000, 4162, "Q", "W", "64 + 8 [dd]"));
        L(Ev(8, 16, 0, 1, 0.002100000, 0, "C", "W", "64 + 8 [0]"));
        L(Ev(8, 0, 3, 7, 0.003000000, 4162, "Q", "W", "1 + 1 [dd]"));
        // The summary blkparse prints at the end.
        L("CPU0 (8,0):");
        L(" Reads Queued:           2,        8KiB\t Writes Queued:           5,     1028KiB");
        L(" Read Dispatches:        1,        8KiB\t Write Dispatches:        1,        4KiB");
        L("Total (8,0):");
        L(" Reads Queued:           2,        8KiB\t Writes Queued:           5,     1028KiB");
        L("");
        L("Throughput (R/W): 8KiB/s / 1028KiB/s");
        L("Events (8,0): 24 entries");
        L("Skips: 0 forward (0 -   0.0%)");
        return sb.ToString();
    }

    [Test]
    public void Read_RealisticExcerpt_PairsQueueAndCompleteInQueueOrder()
    {
        var path = PathOf("sda.txt");
        File.WriteAllText(path, Sample());
        var records = BlkparseImporter.Instance.Read(path).ToArray();
        TraceRecord[] expected =
        [
            Rec(0, 350_112, 0, BlkifOperation.Write, 1000, 4096),
            Rec(10_000, 400_000, 0, BlkifOperation.Read, 2048, 8192),
            Rec(20_000, 500_000, 0, BlkifOperation.Write, 5000, 4096),
            Rec(21_000, 500_000, 0, BlkifOperation.Write, 5008, 4096),
            Rec(600_000, 900_000, 0, BlkifOperation.FlushDiskCache, 0, 0),
            Rec(1_000_000, 1_500_000, 0, BlkifOperation.Discard, 8192, 2048 * 512),
            Rec(1_100_000, 1_600_000, 0, BlkifOperation.Read, 9999, 4096, BlkifStatus.Error),
            Rec(2_000_000, 2_100_000, 1, BlkifOperation.Write, 64, 4096),
            Rec(3_000_000, 3_000_000, 0, BlkifOperation.Write, 1, 512, completed: false),
        ];
        Assert.That(records, Is.EqualTo(expected));
    }

    [Test]
    public void Read_SplitRequest_CompletesAfterLastPiece()
    {
        var text = Ev(8, 0, 0, 1, 1.0, 1, "Q", "W", "0 + 256 [fio]") + "\n"
                 + Ev(8, 0, 0, 2, 1.000001, 1, "X", "W", "0 / 128 [fio]") + "\n"
                 + Ev(8, 0, 0, 3, 1.5, 0, "C", "W", "0 + 128 [0]") + "\n"
                 + Ev(8, 0, 0, 4, 2.25, 0, "C", "W", "128 + 128 [0]") + "\n";
        var records = BlkparseImporter.Instance.Read(new StringReader(text), "split").ToArray();
        Assert.That(records, Is.EqualTo(new[] { Rec(1_000_000_000, 2_250_000_000, 0, BlkifOperation.Write, 0, 256 * 512) }));
    }

    [Test]
    public void Read_PreflushWriteWithData_IsFlushCarryingData()
    {
        var text = Ev(8, 0, 0, 1, 0.5, 1, "Q", "FWFS", "100 + 8 [jbd2/sda1-8]") + "\n"
                 + Ev(8, 0, 0, 2, 0.75, 0, "C", "WFS", "100 + 8 [0]") + "\n";
        var records = BlkparseImporter.Instance.Read(new StringReader(text), "fua").ToArray();
        Assert.That(records, Is.EqualTo(new[] { Rec(500_000_000, 750_000_000, 0, BlkifOperation.FlushDiskCache, 100, 4096) }));
    }

    [Test]
    public void Read_OutstandingLimit_OldestGivenUpAsNotCompleted()
    {
        var sb = new StringBuilder();
        for (var i = 0; i < 5; i++) sb.Append(Ev(8, 0, 0, i + 1, i * 0.001, 1, "Q", "R", $"{i * 8} + 8 [x]")).Append('\n');
        var records = new BlkparseImporter(maxOutstanding: 2).Read(new StringReader(sb.ToString()), "many").ToArray();
        Assert.That(records.Select(r => r.Sector), Is.EqualTo(new ulong[] { 0, 8, 16, 24, 32 }));
        Assert.That(records.All(r => !r.IsCompleted), Is.True);
    }

    [TestCase("garbage here", 2, "MAJOR,MINOR")]
    [TestCase("  8,0    3        1     zero  4162  Q   W 1000 + 8 [dd]", 2, "time column")]
    [TestCase("  8,0    3        1     0.000000001  4162  Q   W x + 8 [dd]", 2, "sector")]
    [TestCase("  8,0    3        1     0.000000001  4162  C   W 1000 + 8 [oops]", 2, "error field")]
    [TestCase("  8,0    3        1     0.000000001  4162  Q   ZZ 1000 + 8 [dd]", 2, "RWBS")]
    public void Read_UnparsableLine_ErrorNamesFileAndLine(string bad, int line, string fragment)
    {
        var path = PathOf("bad.txt");
        File.WriteAllText(path, Ev(8, 0, 0, 1, 0, 1, "Q", "W", "0 + 8 [dd]") + "\n" + bad + "\n");
        var e = Assert.Throws<TraceFormatException>(() => BlkparseImporter.Instance.Read(path).ToArray())!;
        Assert.That(e.Message, Does.Contain(path).And.Contain($"line {line}").And.Contain(fragment));
        Assert.That(e.LineNumber, Is.EqualTo(line));
    }

    [Test]
    public void Detect_BlkparseOutput_IsBlkparse()
    {
        var path = PathOf("d.txt");
        File.WriteAllText(path, Sample());
        Assert.That(TraceFormats.Detect(path), Is.EqualTo(TraceFormat.Blkparse));
        Assert.That(TraceFormats.Read(path).Count(), Is.EqualTo(9));
    }
}
