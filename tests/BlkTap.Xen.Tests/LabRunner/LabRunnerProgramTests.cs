using System.Text.RegularExpressions;
using BlkTap.Testing;
using NUnit.Framework;

namespace BlkTap.Xen.Tests.LabRunner;

/// <summary>
/// The lab's entry point (<see cref="LabRunnerProgram"/>) run as the lab runs it, a child <c>dotnet</c> process on this
/// very assembly. Off Xen every RequiresXen test ignores itself, which is what these tests see.
/// </summary>
[TestFixture]
public sealed class LabRunnerProgramTests
{
    private static ProcessResult RunSelf(params string[] args)
    {
        if (File.Exists("/dev/xen/gntdev")) Assert.Ignore("this machine is a Xen dom0: the RequiresXen tests would run for real");
        var dll = typeof(LabRunnerProgram).Assembly.Location;
        return Peers.Run("dotnet", [dll, .. args], TimeSpan.FromMinutes(5), workingDirectory: Path.GetTempPath());
    }

    [Test]
    public void Main_AdvisoryFilterOffXen_RunsOnlyTheAdvisoryTestsAndSkipsThem()
    {
        var r = RunSelf("--category", "RequiresXen", "--name-contains", ".Advisories.");
        Assert.That(r.ExitCode, Is.EqualTo(0), r.StdOut + r.StdErr);
        var ran = Regex.Matches(r.StdOut, @"^Running (\S+)", RegexOptions.Multiline).Select(m => m.Groups[1].Value).ToList();
        var skipped = Regex.Matches(r.StdOut, @"^  Skipped (\S+):", RegexOptions.Multiline).Count;
        Assert.That(ran, Is.Not.Empty);
        Assert.That(ran, Has.All.Contains(".Advisories.Xsa"), "a test outside the advisories ran");
        // One test per advisory class named by its XSA number, as the issue asks.
        foreach (var xsa in new[] { "Xsa155", "Xsa216", "Xsa332", "Xsa349", "Xsa350", "Xsa361" })
            Assert.That(ran, Has.Some.Contains(xsa), $"no {xsa} test ran");
        Assert.That(skipped, Is.EqualTo(ran.Count));
        Assert.That(r.StdOut, Does.Contain($"Total tests: {ran.Count} Passed: 0 Failed: 0 Skipped: {ran.Count}"));
    }

    [Test]
    public void Main_UnknownArgument_ExitsTwoNamingIt()
    {
        var r = RunSelf("--frobnicate");
        Assert.That(r.ExitCode, Is.EqualTo(2));
        Assert.That(r.StdErr, Does.Contain("'--frobnicate'"));
    }

    [Test]
    public void Main_ResultsFile_WritesNUnitXmlWithTheCounts()
    {
        var xml = Path.Combine(Path.GetTempPath(), $"labrunner-{Guid.NewGuid():N}.xml");
        try
        {
            var r = RunSelf("--category", "RequiresXen", "--name-contains", ".Xsa216", "--results", xml);
            Assert.That(r.ExitCode, Is.EqualTo(0), r.StdOut + r.StdErr);
            var doc = System.Xml.Linq.XDocument.Load(xml);
            var cases = doc.Descendants("test-case").ToList();
            Assert.That(cases, Is.Not.Empty);
            Assert.That(cases.Select(c => (string?)c.Attribute("result")), Has.All.EqualTo("Skipped"));
        }
        finally { File.Delete(xml); }
    }
}
