using System.Diagnostics;
using System.Text.Json;
using BlkTap.Trace;
using BlkTap.Testing;
using NUnit.Framework;

namespace BlkTap.Trace.Tests;

public class FioReplayTests : TraceTestBase
{
    private const int ImageBytes = 1 << 20;

    private static TraceRecord[] Workload() =>
    [
        Rec(0, 40_000, 0, BlkifOperation.Write, 0, 4096),
        Rec(50_000, 80_000, 0, BlkifOperation.Read, 0, 4096),
        Rec(100_000, 130_000, 0, BlkifOperation.Write, 64, 8192),
        Rec(150_000, 160_000, 0, BlkifOperation.FlushDiskCache, 0, 0),
        Rec(200_000, 260_000, 0, BlkifOperation.WriteBarrier, 512, 512),
        Rec(300_000, 320_000, 0, BlkifOperation.FlushDiskCache, 1000, 1024),
        Rec(400_000, 420_000, 0, BlkifOperation.Read, 64, 8192),
        Rec(250_000_000, 250_100_000, 0, BlkifOperation.Write, 2040, 4096), // 250 ms in: fio must wait for it
    ];

    [Test]
    public void Export_KnownRecords_Version3Grammar()
    {
        var sw = new StringWriter();
        var lines = FioIologExporter.Export(Workload()[..5], sw, "/dev/xvdb");
        Assert.That(sw.ToString(), Is.EqualTo(
            "fio version 3 iolog\n1 /dev/xvdb add\n1 /dev/xvdb open\n" +
            "1 /dev/xvdb write 0 4096\n51 /dev/xvdb read 0 4096\n101 /dev/xvdb write 32768 8192\n" +
            "151 /dev/xvdb datasync 0 0\n201 /dev/xvdb write 262144 512\n201 /dev/xvdb datasync 0 0\n" +
            "201 /dev/xvdb close\n"));
        Assert.That(lines, Is.EqualTo(6));
        Assert.Throws<ArgumentException>(() => FioIologExporter.Export(Workload(), new StringWriter(), "/a b"));
    }

    [Test]
    public void Export_ThenImport_SameRequestsAtMicrosecondResolution()
    {
        TraceRecord[] records =
        [
            Rec(1_000, 2_000, 0, BlkifOperation.Read, 8, 4096),
            Rec(5_000_000, 6_000_000, 1, BlkifOperation.Write, 16, 512),
            Rec(7_000_000, 8_000_000, 1, BlkifOperation.Discard, 32, 65536),
        ];
        var sw = new StringWriter();
        FioIologExporter.Export(records, sw, s => $"/dev/disk{s}");
        var back = FioIologImporter.Instance.Read(new StringReader(sw.ToString()), "roundtrip").ToArray();
        Assert.That(back, Is.EqualTo(records.Select(r => Rec(r.SubmitNs + 1000, 0, r.Session, r.Operation, r.Sector, r.Length, completed: false))));
    }

    [Test]
    public void Replay_ExportedIolog_RealFioDoesExactlyTheWritesAndKeepsTiming()
    {
        var fio = Peers.Require("fio");
        var image = PathOf("scratch.img");
        using (var fs = File.Create(image)) fs.SetLength(ImageBytes);
        var log = PathOf("replay.iolog");
        var records = Workload();
        using (var w = new StreamWriter(log)) FioIologExporter.Export(records, w, image);

        var sw = Stopwatch.StartNew();
        var result = Peers.Run(fio, ["--name=replay", $"--read_iolog={log}", "--ioengine=psync", "--output-format=json"],
            TimeSpan.FromSeconds(60), Dir).EnsureSuccess("fio replay");
        var elapsed = sw.Elapsed;

        var writeLike = records.Where(r => r.Operation is BlkifOperation.Write or BlkifOperation.WriteBarrier
            || (r.Operation == BlkifOperation.FlushDiskCache && r.Length > 0)).ToArray();
        var reads = records.Where(r => r.Operation == BlkifOperation.Read).ToArray();
        using var json = JsonDocument.Parse(result.StdOut[result.StdOut.IndexOf('{')..]);
        var job = json.RootElement.GetProperty("jobs")[0];
        Assert.That(job.GetProperty("error").GetInt32(), Is.Zero);
        Assert.That(job.GetProperty("write").GetProperty("io_bytes").GetInt64(), Is.EqualTo(writeLike.Sum(r => (long)r.Length)));
        Assert.That(job.GetProperty("write").GetProperty("total_ios").GetInt64(), Is.EqualTo(writeLike.Length));
        Assert.That(job.GetProperty("read").GetProperty("io_bytes").GetInt64(), Is.EqualTo(reads.Sum(r => (long)r.Length)));

        // Every written sector now holds fio's data; every other sector is still zero.
        var bytes = File.ReadAllBytes(image);
        Assert.That(bytes.Length, Is.EqualTo(ImageBytes));
        var written = new bool[ImageBytes / 512];
        foreach (var r in writeLike)
            for (var s = r.Sector; s < r.Sector + r.SectorCount; s++) written[s] = true;
        for (var s = 0; s < written.Length; s++)
        {
            var allZero = bytes.AsSpan(s * 512, 512).IndexOfAnyExcept((byte)0) < 0;
            Assert.That(allZero, Is.EqualTo(!written[s]), $"sector {s} {(written[s] ? "was written but is zero" : "was not written but changed")}");
        }
        // The last write is 250 ms into the trace: microsecond timestamps make fio wait that long, not 250 s or 0.25 ms.
        Assert.That(elapsed, Is.GreaterThan(TimeSpan.FromMilliseconds(250)));
        Assert.That(elapsed, Is.LessThan(TimeSpan.FromSeconds(30)));
    }
}
