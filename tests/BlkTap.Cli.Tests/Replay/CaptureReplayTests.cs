using BlkTap.Trace;
using FsCheck;
using NUnit.Framework;

namespace BlkTap.Cli.Tests.Replay;

public class CaptureReplayTests : ReplayTestBase
{
    [FsCheck.NUnit.Property(MaxTest = 3)]
    public void Replay_CapturedWorkload_SameRequestSequencePerSession(PositiveInt seed)
    {
        CreateDir();
        try
        {
            var f = Capture("f.bt", seed.Get);
            var g = PathOf("g.bt");
            var (code, stdout, err) = Cli("replay", f, "--tap", $"dump:trace={g},quiet=true", "--tap", "mem", "--timing", "fast", "--verify");
            Assert.That(code, Is.Zero, stdout + err);
            var original = PerSession(f);
            var replayed = PerSession(g);
            Assert.That(original, Has.Count.EqualTo(2));
            Assert.That(original.Sum(s => s.Count), Is.GreaterThan(200));
            Assert.That(replayed, Is.EquivalentTo(original)); // sessions may reach the tap in another order
        }
        finally { DeleteDir(); }
    }

    [Test]
    public void Capture_WithHash_WritesHashAndReadsHashMatchReplayData()
    {
        // The replay's writes carry ReplayData; a capture of the replay with hash=true records the
        // XxHash64 of exactly that data, and a read of a written range hashes to the same data.
        var f = Capture("f.bt", 5);
        var g = PathOf("g.bt");
        var (code, stdout, err) = Cli("replay", f, "--tap", $"dump:trace={g},quiet=true,hash=true", "--tap", "mem", "--timing", "fast", "--qd", "1", "--frontends", "1");
        Assert.That(code, Is.Zero, stdout + err);
        ulong seq = 0;
        int writes = 0;
        foreach (var r in TraceFormats.Read(g))
        {
            if (r.Operation != BlkifOperation.Write) continue;
            seq++;
            var data = new byte[r.Length];
            ReplayData.Fill(data, r.Sector, seq);
            Assert.That(r.HasDataHash, Is.True);
            Assert.That(r.DataHash, Is.EqualTo(System.IO.Hashing.XxHash64.HashToUInt64(data)), $"write #{seq} at {r.Sector}");
            writes++;
        }
        Assert.That(writes, Is.GreaterThan(10));
    }

    [Test]
    public void Replay_DeterministicSameSeed_IdenticalCapture()
    {
        var f = Capture("f.bt", 7, ops: 150, frontends: 3);
        var runs = new List<List<(int, BlkifOperation, ulong, uint, BlkifStatus)>>();
        foreach (var name in new[] { "g1.bt", "g2.bt" })
        {
            var g = PathOf(name);
            var (code, stdout, err) = Cli("replay", f, "--tap", $"dump:trace={g},quiet=true", "--tap", "mem", "--deterministic", "--seed", "11", "--qd", "8");
            Assert.That(code, Is.Zero, stdout + err);
            runs.Add(Sequence(g));
        }
        Assert.That(runs[0], Has.Count.EqualTo(Sequence(f).Count));
        Assert.That(runs[1], Is.EqualTo(runs[0]));
    }
}
