using BlkTap.Trace;
using FsCheck;
using FsCheck.Fluent;

namespace BlkTap.Trace.Tests;

/// <summary>FsCheck generators for trace tests.</summary>
public static class TraceArbitraries
{
    private static readonly BlkifOperation[] Ops =
        [BlkifOperation.Read, BlkifOperation.Write, BlkifOperation.WriteBarrier, BlkifOperation.FlushDiskCache, BlkifOperation.Discard];
    private static readonly BlkifStatus[] Statuses = [BlkifStatus.Okay, BlkifStatus.Error, BlkifStatus.NotSupported];

    public static Gen<TraceRecord> RecordGen()
    {
        var u64 = ArbMap.Default.GeneratorFor<ulong>();
        var u32 = ArbMap.Default.GeneratorFor<uint>();
        var hash = ArbMap.Default.GeneratorFor<ulong?>();
        return from submit in u64
               from latency in u64
               from session in u32
               from op in Gen.Elements(Ops)
               from sector in u64
               from length in u32
               from status in Gen.Elements(Statuses)
               from h in hash
               from completed in ArbMap.Default.GeneratorFor<bool>()
               select new TraceRecord(submit, submit + Math.Min(latency, ulong.MaxValue - submit), session, op, sector, length, status, h, completed);
    }

    public static Arbitrary<TraceRecord> Record() => Arb.From(RecordGen());
}

/// <summary>A temporary directory per test.</summary>
public abstract class TraceTestBase
{
    protected string Dir { get; private set; } = "";

    [NUnit.Framework.SetUp]
    public void CreateDir() => Dir = Directory.CreateTempSubdirectory("blktap-trace-").FullName;

    [NUnit.Framework.TearDown]
    public void DeleteDir()
    {
        try { Directory.Delete(Dir, recursive: true); } catch (IOException) { }
    }

    protected string PathOf(string name) => Path.Combine(Dir, name);

    protected static TraceRecord Rec(ulong submit, ulong complete, uint session, BlkifOperation op, ulong sector, uint length,
        BlkifStatus status = BlkifStatus.Okay, ulong? hash = null, bool completed = true) =>
        new(submit, complete, session, op, sector, length, status, hash, completed);

    protected static string WriteNative(string path, IEnumerable<TraceRecord> records, TraceWriterOptions? options = null)
    {
        using var w = TraceWriter.Create(path, options);
        foreach (var r in records) w.Append(r);
        w.Complete();
        return path;
    }
}
