using System.Collections.Concurrent;
using BlkTap.Chains;
using BlkTap.Examples;
using FsCheck;
using FsCheck.Fluent;
using NUnit.Framework;
using BlkTap.Testing.Rigs;

namespace BlkTap.Examples.Tests.Taps;

public class WatchTapTests
{
    private const int DiskSectors = 128;

    [FsCheck.NUnit.Property(MaxTest = 10)]
    public Property OnRequest_RandomWrites_FiresExactlyOnMatchingWritesNeverOnReads()
    {
        var gen = from first in Gen.Choose(0, DiskSectors - 1)
                  from len in Gen.Choose(1, 16)
                  from useRange in Gen.Elements(true, false)
                  from usePattern in Gen.Elements(true, false)
                  from patternLength in Gen.Choose(2, 700)
                  from seed in Gen.Choose(0, int.MaxValue)
                  where useRange || usePattern
                  select (first, last: Math.Min(DiskSectors - 1, first + len - 1), useRange, usePattern, patternLength, seed);
        return Prop.ForAll(gen.ToArbitrary(), t =>
            Run(t.useRange ? new WatchRange((ulong)t.first, (ulong)t.last) : null, t.usePattern ? t.patternLength : 0, t.seed).GetAwaiter().GetResult());
    }

    private static async Task<bool> Run(WatchRange? range, int patternLength, int seed)
    {
        var rnd = new Random(seed);
        byte[]? pattern = null;
        if (patternLength > 0) { pattern = new byte[patternLength]; rnd.NextBytes(pattern); }
        var log = new StringWriter();
        var watch = new WatchTap(range, pattern, log);
        var hits = new ConcurrentQueue<WatchHit>();
        watch.Hit += hits.Enqueue;
        await using var rig = await ChainRig.StartAsync(watch, new MemTap(DiskSectors * 512, true, false));
        var front = rig.Frontends[0];
        var expected = new List<(ulong Sector, bool Range, long Offset)>();
        for (int i = 0; i < 60; i++)
        {
            int count = rnd.Next(1, 17);
            ulong sector = (ulong)rnd.Next(0, DiskSectors - count + 1);
            if (rnd.Next(3) == 0)
            {
                Assert.That(await front.ReadAsync(sector, new byte[count * 512]), Is.EqualTo(BlkifStatus.Okay));
                continue;
            }
            var data = ChainRig.Pattern(rnd, count);
            if (pattern != null && pattern.Length <= data.Length && rnd.Next(2) == 0)
            {
                // Often straddle a sector boundary, where segments may split.
                int boundary = rnd.Next(0, count + 1) * 512;
                int at = Math.Clamp(boundary - rnd.Next(0, pattern.Length), 0, data.Length - pattern.Length);
                pattern.CopyTo(data, at);
            }
            bool inRange = range is { } r && sector <= r.Last && sector + (ulong)count - 1 >= r.First;
            long offset = pattern == null ? -1 : NaiveFind(data, pattern);
            if (inRange || offset >= 0) expected.Add((sector, inRange, offset));
            Assert.That(await front.WriteAsync(sector, data), Is.EqualTo(BlkifStatus.Okay));
        }
        var got = hits.Select(h => (h.Sector, h.RangeMatched, h.PatternOffset)).ToList();
        Assert.That(got, Is.EqualTo(expected));
        Assert.That(watch.Hits, Is.EqualTo(expected.Count));
        var lines = log.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.That(lines, Has.Length.EqualTo(expected.Count));
        Assert.That(lines, Has.All.Contains("sector="));
        return true;
    }

    private static long NaiveFind(byte[] data, byte[] pattern)
    {
        for (int i = 0; i + pattern.Length <= data.Length; i++)
        {
            int j = 0;
            while (j < pattern.Length && data[i + j] == pattern[j]) j++;
            if (j == pattern.Length) return i;
        }
        return -1;
    }

    [Test]
    public async Task Create_LogOption_WritesHitLineWithSessionSectorAndMatch()
    {
        var path = Path.GetTempFileName();
        try
        {
            var chain = ChainRig.Build(null, $"watch:sectors=10-10,pattern=deadbeef,log={path}", "mem:size=64K");
            await using (var rig = await ChainRig.StartAsync(chain.ToArray()))
            {
                var data = new byte[1024];
                new byte[] { 0xde, 0xad, 0xbe, 0xef }.CopyTo(data, 510);
                Assert.That(await rig.Frontends[0].WriteAsync(9, data), Is.EqualTo(BlkifStatus.Okay));
                Assert.That(await rig.Frontends[0].WriteAsync(20, new byte[512]), Is.EqualTo(BlkifStatus.Okay));
            }
            chain.Dispose();
            var text = File.ReadAllText(path);
            Assert.That(text, Does.Contain("sector=9+2").And.Contain("range=10-10").And.Contain("pattern@510"));
            Assert.That(text.Split('\n', StringSplitOptions.RemoveEmptyEntries), Has.Length.EqualTo(1));
        }
        finally { File.Delete(path); }
    }

    [TestCase("watch", "nothing to watch")]
    [TestCase("watch:sectors=5", "sectors=5")]
    [TestCase("watch:sectors=9-3", "END is before START")]
    [TestCase("watch:sectors=a-b", "sectors=a-b")]
    [TestCase("watch:pattern=abc", "pattern=abc")]
    [TestCase("watch:pattern=zz", "pattern=zz")]
    [TestCase("watch:pattern=00,log=/nonexistent/dir/log", "/nonexistent/dir/log")]
    public void Create_BadOption_ThrowsNamingIt(string spec, string named)
    {
        var ex = Assert.Throws<ChainSpecException>(() => ChainRig.Build(null, spec, "mem"));
        Assert.That(ex!.Message, Does.Contain(named));
    }
}
