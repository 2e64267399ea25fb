using BlkTap.Cli;
using NUnit.Framework;

namespace BlkTap.Cli.Tests.XenServe;

/// <summary><c>blktap xen serve --device2005</c> where no 2005 driver exists (every test machine).</summary>
[TestFixture]
public sealed class XenServeDevice2005CliTests
{
    [Test]
    public void Device2005_NoBlktapDevice_ExitsBadInputNamingTheDevice()
    {
        Assume.That(File.Exists("/dev/blktap"), Is.False, "this machine has a 2005 blktap device");
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int rc = CliApp.Run(["xen", "serve", "--device2005", "--tap", "mem:size=1M"], stdout, stderr);
        Assert.That(rc, Is.EqualTo(CliApp.BadInput), stderr.ToString());
        var lines = stderr.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.That(lines, Has.Length.EqualTo(1));
        Assert.That(lines[0], Does.StartWith("blktap: ").And.Contain("/dev/blktap"));
    }

    [Test]
    public void Device2005_UnknownTap_ExitsBadInputBeforeTouchingTheDevice()
    {
        var stderr = new StringWriter();
        Assert.That(CliApp.Run(["xen", "serve", "--device2005", "--tap", "nosuchtap"], new StringWriter(), stderr), Is.EqualTo(CliApp.BadInput));
        Assert.That(stderr.ToString(), Does.Contain("nosuchtap"));
    }
}
