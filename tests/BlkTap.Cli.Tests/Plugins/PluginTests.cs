using BlkTap.Chains;
using BlkTap.Cli;
using BlkTap.Examples;
using NUnit.Framework;

namespace BlkTap.Cli.Tests.Plugins;

/// <summary>Taps loaded by name from a plugin directory at run time, with no new main().</summary>
public class PluginTests
{
    private string _dir = "";

    [SetUp]
    public void SetUp()
    {
        _dir = Directory.CreateTempSubdirectory("blktap-plugins-").FullName;
        // The sample plugin is built with the solution (tests/BlkTap.SamplePlugin); copy only its own dll.
        var root = TestContext.CurrentContext.TestDirectory;
        var config = root.Contains("/Release/") ? "Release" : "Debug";
        var built = Path.GetFullPath(Path.Combine(root, "../../../../BlkTap.SamplePlugin/bin", config, "net10.0/BlkTap.SamplePlugin.dll"));
        if (!File.Exists(built)) Assert.Fail($"the sample plugin was not built: {built} (build the solution)");
        File.Copy(built, Path.Combine(_dir, "BlkTap.SamplePlugin.dll"));
    }

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, recursive: true);

    [Test]
    public void Taps_PluginDirectory_ListsPluginTapWithOrigin()
    {
        var stdout = new StringWriter();
        Assert.That(CliApp.Run(["taps", "--plugins", _dir], stdout, new StringWriter()), Is.EqualTo(0));
        Assert.That(stdout.ToString(), Does.Contain("count").And.Contain("[plugin:").And.Contain("label=..."));
    }

    [Test]
    public void Run_PluginTapInChain_ServesAndReports()
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int rc = CliApp.Run(["run", "--plugins", _dir, "--tap", "count:label=plugged", "--tap", "mem:size=4M", "--frontends", "1", "--workload", "random:ops=50"], stdout, stderr);
        Assert.That(rc, Is.EqualTo(0), stdout + "\n" + stderr);
        Assert.That(stdout.ToString(), Does.Contain("plugged:").And.Contain("Read="));
    }

    [Test]
    public void LoadPlugins_MissingDirectory_ClearError()
    {
        var ex = Assert.Throws<ChainSpecException>(() => ExampleTaps.CreateRegistry().LoadPlugins("/nonexistent/plugins"));
        Assert.That(ex!.Message, Does.Contain("does not exist"));
    }

    [Test]
    public void Run_UnknownTap_ExitTwoNamingIt()
    {
        var stderr = new StringWriter();
        Assert.That(CliApp.Run(["run", "--tap", "bogus"], new StringWriter(), stderr), Is.EqualTo(2));
        Assert.That(stderr.ToString(), Does.Contain("unknown tap 'bogus'"));
    }
}
