using System.Text.Json;
using BlkTap.Trace;
using BlkTap.Testing;
using NUnit.Framework;

namespace BlkTap.Cli.Tests.Replay;

public class FioExportPeerTests : ReplayTestBase
{
    [Test]
    public void TraceExport_CapturedTrace_RealFioReplaysEveryRequest()
    {
        var fio = Peers.Require("fio");
        var trace = Capture("f.bt", 9, ops: 60, frontends: 1);
        var image = PathOf("disk.img");
        using (var fs = File.Create(image)) fs.SetLength(8 << 20);
        var log = PathOf("f.iolog");
        // fio 3.33 rejects trim entries ("bad ddir: 2"), so discards are left out.
        var (code, stdout, err) = Cli("trace", "export", trace, "--format", "fio", "-o", log, "--target", image, "--no-trim");
        Assert.That(code, Is.Zero, err);
        Assert.That(stdout, Does.Contain("I/O lines"));

        var result = Peers.Run(fio, ["--name=replay", $"--read_iolog={log}", "--ioengine=psync", "--output-format=json"], TimeSpan.FromSeconds(60), Dir)
            .EnsureSuccess("fio replay");
        using var json = JsonDocument.Parse(result.StdOut[result.StdOut.IndexOf('{')..]);
        var job = json.RootElement.GetProperty("jobs")[0];
        var records = TraceFormats.Read(trace).ToArray();
        var reads = records.Where(r => r.Operation == BlkifOperation.Read).ToArray();
        var writes = records.Where(r => r.Operation == BlkifOperation.Write).ToArray();
        Assert.That(job.GetProperty("error").GetInt32(), Is.Zero);
        Assert.That(job.GetProperty("read").GetProperty("total_ios").GetInt64(), Is.EqualTo(reads.Length));
        Assert.That(job.GetProperty("read").GetProperty("io_bytes").GetInt64(), Is.EqualTo(reads.Sum(r => (long)r.Length)));
        Assert.That(job.GetProperty("write").GetProperty("total_ios").GetInt64(), Is.EqualTo(writes.Length));
        Assert.That(job.GetProperty("write").GetProperty("io_bytes").GetInt64(), Is.EqualTo(writes.Sum(r => (long)r.Length)));
    }
}
