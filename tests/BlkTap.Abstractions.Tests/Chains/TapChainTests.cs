using BlkTap.Chains;
using NUnit.Framework;

namespace BlkTap.Abstractions.Tests.Chains;

/// <summary>The owning chain: disposes its taps once, terminator first, and all of them even when one throws.</summary>
public class TapChainTests
{
    private sealed class RecordingTap(string name, List<string> log, bool throws = false) : TapBase(name)
    {
        public override void Dispose()
        {
            log.Add(Name);
            base.Dispose();
            if (throws) throw new InvalidOperationException($"{Name} failed");
        }
    }

    [Test]
    public void Dispose_ThreeTaps_DisposesEachOnceInReverseOrder()
    {
        var log = new List<string>();
        var chain = new TapChain([new RecordingTap("dump", log), new RecordingTap("cow", log), new RecordingTap("img", log)]);
        chain.Dispose();
        chain.Dispose();
        Assert.That(log, Is.EqualTo(new[] { "img", "cow", "dump" }));
    }

    [Test]
    public void Dispose_OneTapThrows_DisposesTheOthersThenRethrowsIt()
    {
        var log = new List<string>();
        var chain = new TapChain([new RecordingTap("dump", log), new RecordingTap("cow", log, throws: true), new RecordingTap("img", log)]);
        var ex = Assert.Throws<InvalidOperationException>(chain.Dispose);
        Assert.That(ex!.Message, Is.EqualTo("cow failed"));
        Assert.That(log, Is.EqualTo(new[] { "img", "cow", "dump" }));
    }

    [Test]
    public void Dispose_TwoTapsThrow_AggregatesBoth()
    {
        var log = new List<string>();
        var chain = new TapChain([new RecordingTap("a", log, throws: true), new RecordingTap("b", log, throws: true)]);
        var ex = Assert.Throws<AggregateException>(chain.Dispose);
        Assert.That(ex!.InnerExceptions.Select(e => e.Message), Is.EqualTo(new[] { "b failed", "a failed" }));
    }

    [Test]
    public void Add_AfterDispose_Throws()
    {
        var chain = new TapChain();
        chain.Dispose();
        Assert.Throws<ObjectDisposedException>(() => chain.Add(new RecordingTap("mem", [])));
    }

    [Test]
    public void Build_ValidSpecs_ReturnsChainInSpecOrder()
    {
        using var chain = BlkTap.Examples.ExampleTaps.CreateRegistry().Build(
            [TapSpec.Parse("dump:quiet=true"), TapSpec.Parse("mem:size=64K")], new TapContext { Output = TextWriter.Null });
        Assert.That(chain.Select(t => t.Name), Is.EqualTo(new[] { "dump", "mem" }));
    }
}
