using BlkTap.Chains;
using BlkTap.Trace;
using NUnit.Framework;

namespace BlkTap.Trace.Tests;

public class ReplayPlanTests
{
    private static TraceSummary Reaching(ulong sector, uint length = 4096) =>
        TraceSummary.Scan([new TraceRecord(0, 10, 0, BlkifOperation.Write, sector, length, BlkifStatus.Okay)]);

    private static ReplayPlan Plan(TraceSummary summary, params string[] specs) => ReplayPlan.For(specs.Select(TapSpec.Parse).ToList(), summary);

    [Test]
    public void For_BareMem_SizedToTraceRoundedUpToMiB()
    {
        var plan = Plan(Reaching(300_000), "mem"); // ends at byte 153,604,096: 147 MiB rounded up
        Assert.That(plan.AutoSized, Is.True);
        Assert.That(plan.DiskBytes, Is.EqualTo(147L << 20));
        Assert.That(plan.Specs.Single().Text, Is.EqualTo($"mem:size={147L << 20}"));
    }

    [Test]
    public void For_BareMemSmallTrace_AtLeastMinimum()
    {
        var plan = Plan(Reaching(8), "mem:shared=false");
        Assert.That(plan.DiskBytes, Is.EqualTo(ReplayPlan.MinimumAutoSize));
        Assert.That(plan.Specs.Single().Text, Is.EqualTo($"mem:shared=false,size={ReplayPlan.MinimumAutoSize}"));
    }

    [TestCase("mem:size=1M")]
    [TestCase("dump:quiet=true", "mem")]
    [TestCase("img:path=/nonexistent")]
    public void For_SizedOrLongerChain_SpecsUnchanged(params string[] specs)
    {
        var plan = Plan(Reaching(300_000), specs);
        Assert.That(plan.AutoSized, Is.False);
        Assert.That(plan.DiskBytes, Is.Zero);
        Assert.That(plan.Specs.Select(s => s.Text), Is.EqualTo(specs));
    }

    [TestCase(new[] { "mem" }, true, true)]
    [TestCase(new[] { "mem:shared=false" }, false, true)]
    [TestCase(new[] { "img:path=/x.raw" }, true, false)]
    [TestCase(new[] { "img" }, false, false)]
    [TestCase(new[] { "crypt:keyfile=/k", "aio:path=/x.raw" }, true, false)]
    public void For_Terminator_SharingAndZerosByName(string[] specs, bool shared, bool zeros)
    {
        var plan = Plan(Reaching(8), specs);
        Assert.That(plan.SharedDisk, Is.EqualTo(shared));
        Assert.That(plan.InitiallyZero, Is.EqualTo(zeros));
    }

    [Test]
    public void For_SharedNotBoolean_Throws() =>
        Assert.Throws<ChainSpecException>(() => Plan(Reaching(8), "mem:shared=maybe"));

    [Test]
    public void RequiredMebibytes_PartialMiB_RoundsUp() =>
        Assert.That(ReplayPlan.RequiredMebibytes(Reaching(2048, 512)), Is.EqualTo(2UL));
}
