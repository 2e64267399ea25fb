using System.Diagnostics;
using BlkTap.Trace;
using NUnit.Framework;

namespace BlkTap.Trace.Tests;

public class NativeFormatTests : TraceTestBase
{
    [FsCheck.NUnit.Property(Arbitrary = [typeof(TraceArbitraries)], MaxTest = 50)]
    public bool RoundTrip_RandomRecords_ReadBackIdentical(TraceRecord[] records, string? description)
    {
        description ??= "";
        using var ms = new MemoryStream();
        using (var w = new TraceWriter(ms, new TraceWriterOptions { Description = description, RecordsPerBlock = 3, MaxQueuedBlocks = 2 }, leaveOpen: true))
            foreach (var r in records) w.Append(r);
        ms.Position = 0;
        using var reader = new TraceReader(ms, "mem");
        var back = reader.ReadAll().ToArray();
        return back.SequenceEqual(records) && reader.Header.Description == description && reader.DroppedRecords == 0;
    }

    [Test]
    public void Header_WrittenFields_ReadBack()
    {
        var created = new DateTimeOffset(2024, 5, 6, 7, 8, 9, TimeSpan.Zero).AddTicks(1234567);
        var path = WriteNative(PathOf("h.btt"), [Rec(1, 2, 0, BlkifOperation.Write, 8, 4096)],
            new TraceWriterOptions { Description = "blktap capture --tap dump — ünïcode", CreatedUtc = created });
        using var r = TraceReader.Open(path);
        Assert.That(r.Header.Version, Is.EqualTo(1));
        Assert.That(r.Header.RecordSize, Is.EqualTo(48));
        Assert.That(r.Header.CreatedUtc, Is.EqualTo(created));
        Assert.That(r.Header.Description, Is.EqualTo("blktap capture --tap dump — ünïcode"));
        Assert.That(new FileInfo(path).Length % 8, Is.EqualTo(0));
    }

    [Test]
    public void Write_OneMillionRecords_ReadBackInSaneTime()
    {
        const int n = 1_000_000;
        var path = PathOf("big.btt");
        var sw = Stopwatch.StartNew();
        using (var w = TraceWriter.Create(path))
        {
            for (var i = 0; i < n; i++)
                w.Append(new TraceRecord((ulong)i * 1000, (ulong)i * 1000 + 500, (uint)(i & 3), (i & 1) == 0 ? BlkifOperation.Read : BlkifOperation.Write,
                    (ulong)i * 8, 4096, BlkifStatus.Okay, (i & 2) == 0 ? (ulong)i : null));
        }
        var writeTime = sw.Elapsed;
        sw.Restart();
        long count = 0;
        ulong lastSector = 0;
        foreach (var r in TraceReader.ReadFile(path)) { count++; lastSector = r.Sector; }
        var readTime = sw.Elapsed;
        Assert.That(count, Is.EqualTo(n));
        Assert.That(lastSector, Is.EqualTo((ulong)(n - 1) * 8));
        Assert.That(new FileInfo(path).Length, Is.EqualTo(40 + 48L * n + 32));
        // Generous bounds: a sanity check against a pathological slowdown, on a machine that may be busy.
        Assert.That(writeTime, Is.LessThan(TimeSpan.FromSeconds(30)), "writing 1M records");
        Assert.That(readTime, Is.LessThan(TimeSpan.FromSeconds(30)), "reading 1M records");
        TestContext.Out.WriteLine($"1M records: write {writeTime.TotalMilliseconds:F0} ms, read {readTime.TotalMilliseconds:F0} ms");
    }

    [Test]
    public void Read_EmptyTrace_NoRecords()
    {
        var path = WriteNative(PathOf("e.btt"), []);
        Assert.That(TraceReader.ReadFile(path).Count(), Is.Zero);
    }

    [Test]
    public void Open_BadMagic_ErrorNamesFileAndOffset()
    {
        var path = PathOf("bad.btt");
        File.WriteAllBytes(path, "NOTATRACE and more bytes than a header needs......"u8.ToArray());
        var e = Assert.Throws<TraceFormatException>(() => TraceReader.Open(path).Dispose())!;
        Assert.That(e.Message, Does.Contain(path).And.Contain("byte offset 0").And.Contain("magic"));
        Assert.That(e.ByteOffset, Is.EqualTo(0));
    }

    [Test]
    public void Open_UnknownVersion_ErrorNamesVersion()
    {
        var path = WriteNative(PathOf("v.btt"), []);
        var bytes = File.ReadAllBytes(path);
        bytes[8] = 7;
        File.WriteAllBytes(path, bytes);
        var e = Assert.Throws<TraceFormatException>(() => TraceReader.Open(path).Dispose())!;
        Assert.That(e.Message, Does.Contain(path).And.Contain("byte offset 8").And.Contain("unknown trace format version 7"));
    }

    [Test]
    public void Open_CorruptDescription_HeaderCrcError()
    {
        var path = WriteNative(PathOf("c.btt"), [], new TraceWriterOptions { Description = "hello" });
        var bytes = File.ReadAllBytes(path);
        bytes[41] ^= 0x20;
        File.WriteAllBytes(path, bytes);
        var e = Assert.Throws<TraceFormatException>(() => TraceReader.Open(path).Dispose())!;
        Assert.That(e.Message, Does.Contain("corrupt header"));
    }

    [Test]
    public void Read_CorruptRecord_ErrorNamesRecordOffset()
    {
        var records = Enumerable.Range(0, 10).Select(i => Rec((ulong)i, (ulong)i + 1, 0, BlkifOperation.Read, (ulong)i, 512)).ToArray();
        var path = WriteNative(PathOf("r.btt"), records);
        var bytes = File.ReadAllBytes(path);
        var recordOffset = 40 + 48 * 6;
        bytes[recordOffset + 17] ^= 1; // sector of record #6
        File.WriteAllBytes(path, bytes);
        var seen = new List<TraceRecord>();
        var e = Assert.Throws<TraceFormatException>(() => { foreach (var r in TraceReader.ReadFile(path)) seen.Add(r); })!;
        Assert.That(e.Message, Does.Contain(path).And.Contain($"byte offset {recordOffset}").And.Contain("corrupt record"));
        Assert.That(seen, Is.EqualTo(records[..6]));
    }

    [TestCase(1)]
    [TestCase(20)]
    [TestCase(32)]
    [TestCase(33)]
    [TestCase(48 + 32)]
    public void Read_TruncatedFile_ErrorNamesOffset(int cut)
    {
        var records = Enumerable.Range(0, 5).Select(i => Rec((ulong)i, (ulong)i, 1, BlkifOperation.Write, (ulong)i * 8, 4096)).ToArray();
        var path = WriteNative(PathOf("t.btt"), records);
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..^cut]);
        var e = Assert.Throws<TraceFormatException>(() => TraceReader.ReadFile(path).Count())!;
        Assert.That(e.Message, Does.Contain(path).And.Contain("byte offset"));
        Assert.That(e.Message, Does.Contain("truncated").Or.Contain("trailer"));
    }

    [Test]
    public void Read_TruncatedWithAllowTruncated_SalvagesCompleteRecords()
    {
        var records = Enumerable.Range(0, 5).Select(i => Rec((ulong)i, (ulong)i, 1, BlkifOperation.Write, (ulong)i * 8, 4096)).ToArray();
        var path = WriteNative(PathOf("s.btt"), records);
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..(40 + 48 * 3 + 10)]); // crash mid-record #3, no trailer
        using var reader = TraceReader.Open(path, allowTruncated: true);
        Assert.That(reader.ReadAll().ToArray(), Is.EqualTo(records[..3]));
        Assert.That(reader.Truncated, Is.True);
    }

    [Test]
    public void Read_TrailerCountMismatch_Error()
    {
        var path = WriteNative(PathOf("m.btt"), [Rec(0, 1, 0, BlkifOperation.Read, 0, 512), Rec(1, 2, 0, BlkifOperation.Read, 1, 512)]);
        var bytes = File.ReadAllBytes(path).ToList();
        bytes.RemoveRange(40, 48); // drop a whole record: still aligned, trailer now disagrees
        File.WriteAllBytes(path, bytes.ToArray());
        var e = Assert.Throws<TraceFormatException>(() => TraceReader.ReadFile(path).Count())!;
        Assert.That(e.Message, Does.Contain("trailer says 2 records but the file holds 1"));
    }

    [Test]
    public void Append_DropNewestWhileWriterStalls_CountsDropsAndNeverBlocks()
    {
        using var gate = new ManualResetEventSlim(false);
        var stream = new GatedStream(gate);
        var w = new TraceWriter(stream, new TraceWriterOptions { RecordsPerBlock = 4, MaxQueuedBlocks = 2, FullMode = TraceFullMode.DropNewest }, leaveOpen: true);
        var sw = Stopwatch.StartNew();
        for (var i = 0; i < 1000; i++) w.Append(Rec((ulong)i, (ulong)i, 0, BlkifOperation.Write, (ulong)i, 512));
        // The writer stays stalled until the gate opens below: an Append that waited for it would never return.
        Assert.That(sw.Elapsed, Is.LessThan(TimeSpan.FromSeconds(30)), "Append must not wait for the stalled writer");
        // At most: one block in the writer's hands, two queued, one being filled.
        Assert.That(w.DroppedRecords, Is.GreaterThanOrEqualTo(1000 - 4 * 4));
        var dropped = w.DroppedRecords;
        gate.Set();
        w.Complete();
        stream.Position = 0;
        using var reader = new TraceReader(stream, "gated");
        var back = reader.ReadAll().ToArray();
        Assert.That(back.Length, Is.EqualTo(1000 - dropped));
        Assert.That(reader.DroppedRecords, Is.EqualTo((ulong)dropped));
        Assert.That(back.Select(r => r.SubmitNs), Is.Ordered.Ascending);
    }

    [Test]
    public void Append_BlockModeWhileWriterSlow_LosesNothing()
    {
        using var gate = new ManualResetEventSlim(false);
        var stream = new GatedStream(gate);
        var w = new TraceWriter(stream, new TraceWriterOptions { RecordsPerBlock = 4, MaxQueuedBlocks = 1, FullMode = TraceFullMode.Block }, leaveOpen: true);
        var producer = Task.Run(() => { for (var i = 0; i < 200; i++) w.Append(Rec((ulong)i, (ulong)i, 0, BlkifOperation.Read, (ulong)i, 512)); });
        Assert.That(producer.Wait(TimeSpan.FromMilliseconds(300)), Is.False, "the producer should be blocked while the writer is stalled");
        gate.Set();
        Assert.That(producer.Wait(TimeSpan.FromSeconds(60)), Is.True);
        w.Complete();
        stream.Position = 0;
        using var reader = new TraceReader(stream, "gated");
        Assert.That(reader.ReadAll().Select(r => r.SubmitNs), Is.EqualTo(Enumerable.Range(0, 200).Select(i => (ulong)i)));
        Assert.That(w.DroppedRecords, Is.Zero);
    }

    [Test]
    public void Append_AfterBackgroundWriteFails_ThrowsIOException()
    {
        var stream = new FailingStream();
        var w = new TraceWriter(stream, new TraceWriterOptions { RecordsPerBlock = 1 });
        var e = Assert.Throws<IOException>(() =>
        {
            for (var i = 0; i < 10_000; i++)
            {
                w.Append(Rec(0, 0, 0, BlkifOperation.Read, 0, 512));
                Thread.Sleep(i < 5 ? 20 : 0);
            }
        })!;
        Assert.That(e.Message, Does.Contain("trace writer failed").And.Contain("disk full"));
        Assert.Throws<IOException>(() => w.Complete());
    }

    // MemoryStream subclasses route span writes through Write(byte[], int, int).
    private sealed class GatedStream(ManualResetEventSlim gate) : MemoryStream
    {
        private int _writes;
        public override void Write(byte[] buffer, int offset, int count)
        {
            if (Interlocked.Increment(ref _writes) > 1) gate.Wait(); // the header goes through, records wait
            base.Write(buffer, offset, count);
        }
    }

    private sealed class FailingStream : MemoryStream
    {
        private int _writes;
        public override void Write(byte[] buffer, int offset, int count)
        {
            if (Interlocked.Increment(ref _writes) > 1) throw new IOException("disk full");
            base.Write(buffer, offset, count);
        }
    }
}
