using BlkTap.Chains;
using BlkTap.Emulator;
using BlkTap.Examples;
using FsCheck;
using FsCheck.Fluent;
using NUnit.Framework;
using BlkTap.Testing.Rigs;

namespace BlkTap.Examples.Tests.Taps;

public class ErrorTapTests
{
    private const int DiskSectors = 64;

    [FsCheck.NUnit.Property(MaxTest = 8)]
    public Property OnRequest_RandomWorkload_FailsAboutRateOfTargetedOpsOnlyAndFailedWritesNeverLand()
    {
        var gen = from rate in Gen.Elements(0.0, 0.1, 0.3, 0.5, 1.0)
                  from read in Gen.Elements(true, false)
                  from write in Gen.Elements(true, false)
                  from flush in Gen.Elements(true, false)
                  from seed in Gen.Choose(0, int.MaxValue)
                  where read || write || flush
                  select (rate, read, write, flush, seed);
        return Prop.ForAll(gen.ToArbitrary(), t => Run(t.rate, t.read, t.write, t.flush, t.seed).GetAwaiter().GetResult());
    }

    private static async Task<bool> Run(double rate, bool targetRead, bool targetWrite, bool targetFlush, int seed)
    {
        var ops = new List<string>();
        if (targetRead) ops.Add("read");
        if (targetWrite) ops.Add("write");
        if (targetFlush) ops.Add("flush");
        var chain = ChainRig.Build(new TapContext { Output = TextWriter.Null, Seed = seed },
            $"error:rate={rate.ToString(System.Globalization.CultureInfo.InvariantCulture)},ops={string.Join('+', ops)}", "mem:size=32K");
        await using var rig = await ChainRig.StartAsync(chain.ToArray());
        var front = rig.Frontends[0];
        var model = new byte[DiskSectors * 512];
        var rnd = new Random(seed);
        const int n = 300;
        int targeted = 0, failed = 0;
        for (int i = 0; i < n; i++)
        {
            int kind = rnd.Next(3);
            int count = rnd.Next(1, 9);
            ulong sector = (ulong)rnd.Next(0, DiskSectors - count + 1);
            bool isTargeted = kind switch { 0 => targetRead, 1 => targetWrite, _ => targetFlush };
            BlkifStatus status;
            if (kind == 0)
            {
                var buf = new byte[count * 512];
                status = await front.ReadAsync(sector, buf);
                if (status == BlkifStatus.Okay && !buf.AsSpan().SequenceEqual(model.AsSpan((int)sector * 512, buf.Length)))
                {
                    Assert.Fail($"read of {sector}+{count} differs from the model");
                }
            }
            else if (kind == 1)
            {
                var data = ChainRig.Pattern(rnd, count);
                status = await front.WriteAsync(sector, data);
                if (status == BlkifStatus.Okay) data.CopyTo(model, (int)sector * 512);
            }
            else
            {
                status = await front.FlushAsync();
            }
            if (isTargeted) targeted++;
            if (status != BlkifStatus.Okay)
            {
                Assert.That(isTargeted, Is.True, $"non-targeted op {kind} failed with {status}");
                Assert.That(status, Is.EqualTo(BlkifStatus.Error));
                failed++;
            }
        }
        // Final sweep: the disk equals the model, so no failed write landed.
        var all = new byte[model.Length];
        var tap = (ErrorTap)chain[0];
        long before = tap.Failed;
        var st = await front.ReadAsync(0, all);
        if (st == BlkifStatus.Okay) Assert.That(all, Is.EqualTo(model), "disk differs from the model: a failed write reached it");
        double mean = targeted * rate, sd = Math.Sqrt(targeted * rate * (1 - rate));
        Assert.That(Math.Abs(failed - mean), Is.LessThanOrEqualTo(4.5 * sd + 1), $"{failed} of {targeted} failed at rate {rate}");
        Assert.That(before, Is.EqualTo(failed));
        return true;
    }

    [Test]
    public async Task OnRequest_StatusEopnotsupp_AnswersNotSupported()
    {
        var chain = ChainRig.Build(null, "error:rate=1,status=eopnotsupp,ops=write", "mem:size=32K");
        await using var rig = await ChainRig.StartAsync(chain.ToArray());
        Assert.That(await rig.Frontends[0].WriteAsync(0, new byte[512]), Is.EqualTo(BlkifStatus.NotSupported));
        Assert.That(await rig.Frontends[0].ReadAsync(0, new byte[512]), Is.EqualTo(BlkifStatus.Okay));
    }

    [TestCase("error:rate=1.5", "rate=1.5")]
    [TestCase("error:rate=abc", "rate=abc")]
    [TestCase("error:ops=read+bogus", "bogus")]
    [TestCase("error:status=ebusy", "status=ebusy")]
    [TestCase("error:seed=x", "seed=x")]
    public void Create_BadOption_ThrowsNamingIt(string spec, string named)
    {
        var ex = Assert.Throws<ChainSpecException>(() => ChainRig.Build(null, spec, "mem"));
        Assert.That(ex!.Message, Does.Contain(named));
    }
}
