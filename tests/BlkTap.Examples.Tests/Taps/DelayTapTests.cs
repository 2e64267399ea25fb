using System.Diagnostics;
using BlkTap.Chains;
using BlkTap.Examples;
using BlkTap.Testing;
using NUnit.Framework;
using BlkTap.Testing.Rigs;

namespace BlkTap.Examples.Tests.Taps;

public class DelayTapTests
{
    [Test]
    public async Task OnRequest_FixedDelay_ReadLatencyAtLeastTheDelay()
    {
        var chain = ChainRig.Build(null, "delay:ms=60", "mem:size=64K");
        await using var rig = await ChainRig.StartAsync(chain.ToArray());
        var front = rig.Frontends[0];
        for (int i = 0; i < 3; i++)
        {
            var sw = Stopwatch.StartNew();
            Assert.That(await front.ReadAsync(0, new byte[4096]), Is.EqualTo(BlkifStatus.Okay));
            Assert.That(sw.Elapsed.TotalMilliseconds, Is.GreaterThanOrEqualTo(60));
        }
        Assert.That(((DelayTap)chain[0]).Delayed, Is.EqualTo(3));
    }

    [Test]
    public async Task OnRequest_OpsWriteOnly_ReadsNotDelayed()
    {
        var chain = ChainRig.Build(null, "delay:ms=5000,ops=write", "mem:size=64K");
        await using var rig = await ChainRig.StartAsync(chain.ToArray());
        var sw = Stopwatch.StartNew();
        Assert.That(await rig.Frontends[0].ReadAsync(0, new byte[512]), Is.EqualTo(BlkifStatus.Okay));
        Assert.That(sw.Elapsed.TotalMilliseconds, Is.LessThan(4000));
        Assert.That(((DelayTap)chain[0]).Delayed, Is.Zero);
    }

    [Test]
    public async Task OnRequest_RandomDelaysConcurrentRequests_AllCompleteOutOfOrderAndMatchModel()
    {
        var chain = ChainRig.Build(new TapContext { Output = TextWriter.Null, Seed = 5 }, "delay:min=0,max=20", "mem:size=256K");
        await using var rig = await ChainRig.StartAsync(chain.ToArray());
        var front = rig.Frontends[0];
        var rnd = new Random(5);
        // Disjoint writes in flight together (each to its own 4 KiB region), then concurrent reads back.
        const int n = 48;
        var data = new byte[n][];
        var order = new System.Collections.Concurrent.ConcurrentQueue<int>();
        var writes = new Task[n];
        for (int i = 0; i < n; i++)
        {
            data[i] = ChainRig.Pattern(rnd, 8);
            int k = i;
            writes[i] = front.WriteAsync((ulong)(k * 8), data[k]).ContinueWith(t =>
            {
                Assert.That(t.Result, Is.EqualTo(BlkifStatus.Okay));
                order.Enqueue(k);
            }, TaskContinuationOptions.ExecuteSynchronously);
        }
        Assert.That(Task.WaitAll(writes, Waits.Deadline), Is.True, "writes did not complete");
        Assert.That(order.ToArray(), Is.Not.Ordered, "random delays should complete requests out of submission order");
        var reads = new Task<BlkifStatus>[n];
        var back = new byte[n][];
        for (int i = 0; i < n; i++) { back[i] = new byte[4096]; reads[i] = front.ReadAsync((ulong)(i * 8), back[i]); }
        var statuses = await Task.WhenAll(reads).WaitAsync(Waits.Deadline);
        for (int i = 0; i < n; i++)
        {
            Assert.That(statuses[i], Is.EqualTo(BlkifStatus.Okay));
            Assert.That(back[i], Is.EqualTo(data[i]), $"region {i}");
        }
        Assert.That(((DelayTap)chain[0]).Pending, Is.Zero);
    }

    [Test]
    public async Task OnRequest_RandomWorkloadThroughDelay_EqualsModel()
    {
        var chain = ChainRig.Build(new TapContext { Output = TextWriter.Null, Seed = 9 }, "delay:min=0,max=3", "mem:size=32K");
        await using var rig = await ChainRig.StartAsync(chain.ToArray());
        var front = rig.Frontends[0];
        var model = new byte[32 * 1024];
        var rnd = new Random(9);
        for (int i = 0; i < 150; i++)
        {
            int count = rnd.Next(1, 9);
            int sector = rnd.Next(0, 64 - count + 1);
            if (rnd.Next(2) == 0)
            {
                var d = ChainRig.Pattern(rnd, count);
                Assert.That(await front.WriteAsync((ulong)sector, d), Is.EqualTo(BlkifStatus.Okay));
                d.CopyTo(model, sector * 512);
            }
            else
            {
                var b = new byte[count * 512];
                Assert.That(await front.ReadAsync((ulong)sector, b), Is.EqualTo(BlkifStatus.Okay));
                Assert.That(b, Is.EqualTo(model.AsSpan(sector * 512, b.Length).ToArray()));
            }
        }
    }

    [TestCase("delay", "missing the delay")]
    [TestCase("delay:ms=5,min=1", "not both")]
    [TestCase("delay:min=10,max=5", "max=5")]
    [TestCase("delay:ms=-1", "negative")]
    [TestCase("delay:min=1", "missing the delay")]
    [TestCase("delay:ms=1,ops=seek", "seek")]
    public void Create_BadOption_ThrowsNamingIt(string spec, string named)
    {
        var ex = Assert.Throws<ChainSpecException>(() => ChainRig.Build(null, spec, "mem"));
        Assert.That(ex!.Message, Does.Contain(named));
    }
}
