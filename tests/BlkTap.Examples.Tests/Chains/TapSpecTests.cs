using BlkTap.Chains;
using BlkTap.Examples;
using NUnit.Framework;

namespace BlkTap.Examples.Tests.Chains;

public class TapSpecTests
{
    [Test]
    public void Parse_ListValue_ContinuesPreviousOption()
    {
        var spec = TapSpec.Parse("error:ops=read,write,rate=0.5");
        Assert.That(spec.Name, Is.EqualTo("error"));
        Assert.That(spec.Options["ops"], Is.EqualTo("read,write"));
        Assert.That(spec.Options["rate"], Is.EqualTo("0.5"));
    }

    [TestCase("", "empty")]
    [TestCase(":a=b", "missing tap name")]
    [TestCase("mem:", "nothing after")]
    [TestCase("mem:size", "not key=value")]
    [TestCase("mem:size=1M,size=2M", "given twice")]
    public void Parse_BadSpec_ErrorNamesTheProblem(string text, string expected)
    {
        var ex = Assert.Throws<ChainSpecException>(() => TapSpec.Parse(text));
        Assert.That(ex!.Message, Does.Contain(expected));
    }

    [TestCase("64M", 64L << 20)]
    [TestCase("1G", 1L << 30)]
    [TestCase("4096", 4096L)]
    [TestCase("2KiB", 2048L)]
    public void SizesTryParse_Suffixes_PowersOf1024(string text, long bytes)
    {
        Assert.That(Sizes.TryParse(text, out var n), Is.True);
        Assert.That(n, Is.EqualTo(bytes));
    }

    [Test]
    public void RegistryBuild_UnknownOptionOrMissingTerminator_ClearErrors()
    {
        var registry = ExampleTaps.CreateRegistry();
        var ctx = new TapContext { Output = TextWriter.Null };
        Assert.That(Assert.Throws<ChainSpecException>(() => registry.Build([TapSpec.Parse("mem:bogus=1")], ctx))!.Message, Does.Contain("unknown option 'bogus'"));
        Assert.That(Assert.Throws<ChainSpecException>(() => registry.Build([TapSpec.Parse("dump")], ctx))!.Message, Does.Contain("end it with a terminator"));
        Assert.That(Assert.Throws<ChainSpecException>(() => registry.Build([TapSpec.Parse("mem"), TapSpec.Parse("dump")], ctx))!.Message, Does.Contain("must be the last"));
        Assert.That(Assert.Throws<ChainSpecException>(() => registry.Build([TapSpec.Parse("img:path=/nonexistent/disk.raw")], ctx))!.Message, Does.Contain("does not exist"));
    }

    [TestCase("threads=0", "'threads=0' is out of range (1 to 16)")]
    [TestCase("threads=17", "'threads=17' is out of range (1 to 16)")]
    [TestCase("threads=two", "'threads=two' is not an integer")]
    [TestCase("map=true,uring=true", "options 'map' and 'uring' exclude each other")]
    [TestCase("map=maybe", "'map=maybe' is not true or false")]
    public void RegistryBuild_ImgBadOption_NamesTheProblem(string option, string message)
    {
        var disk = Path.GetTempFileName();
        try
        {
            var ctx = new TapContext { Output = TextWriter.Null };
            var ex = Assert.Throws<ChainSpecException>(() => ExampleTaps.CreateRegistry().Build([TapSpec.Parse($"img:path={disk},{option}")], ctx));
            Assert.That(ex!.Message, Does.Contain(message));
        }
        finally { File.Delete(disk); }
    }
}
