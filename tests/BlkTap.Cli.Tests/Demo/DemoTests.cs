using BlkTap.Cli;
using NUnit.Framework;

namespace BlkTap.Cli.Tests.Demo;

public class DemoTests
{
    [Test]
    public void Demo_DefaultRun_VerifiesTwoGuestsThroughDumpCowMem()
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int rc = CliApp.Run(["demo"], stdout, stderr);
        var text = stdout.ToString();
        Assert.That(rc, Is.EqualTo(0), text + stderr);
        Assert.That(text, Does.Contain("2 guest domain(s)"));
        Assert.That(text, Does.Contain("dump:quiet=true → cow:overlay="));
        Assert.That(text, Does.Contain("every read matched the model"));
        Assert.That(text, Does.Contain("dump saw"));
    }

    [Test]
    public void Run_DeterministicSameSeed_SameSummary()
    {
        string Once()
        {
            var stdout = new StringWriter();
            Assert.That(CliApp.Run(["run", "--tap", "mem:size=8M", "--deterministic", "--seed", "9", "--workload", "random:ops=200"], stdout, new StringWriter()), Is.EqualTo(0));
            // Drop the wall-clock time from the last line.
            return string.Join("\n", stdout.ToString().Split('\n').Where(l => !l.Contains(" s")));
        }
        Assert.That(Once(), Is.EqualTo(Once()));
    }

    [TestCase("--frontends", "0", "--frontends 0")]
    [TestCase("--protocol", "ppc-abi", "--protocol 'ppc-abi'")]
    [TestCase("--workload", "random:ops=0", "must be positive")]
    public void Run_BadArgument_ExitTwoWithOneLine(string option, string value, string expected)
    {
        var stderr = new StringWriter();
        int rc = CliApp.Run(["run", "--tap", "mem", option, value], new StringWriter(), stderr);
        Assert.That(rc, Is.EqualTo(2));
        Assert.That(stderr.ToString(), Does.Contain(expected));
        Assert.That(stderr.ToString().Trim().Split('\n'), Has.Length.EqualTo(1));
    }
}
