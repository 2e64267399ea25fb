using BlkTap.Testing;
using NUnit.Framework;

namespace BlkTap.Cli.Tests.Plugins;

/// <summary>
/// A plugin built against another release of BlkTap.Abstractions (a later version number, the same contract) loads
/// into this host: the contract assembly is shared whatever version the plugin names. Before, the default load
/// context refused a plugin that named a later version than the host's, and every release bumps the number.
/// </summary>
[TestFixture]
[NonParallelizable]
public sealed class PluginVersionSkewTests
{
    private string _dir = "";

    [SetUp]
    public void SetUp() => _dir = Directory.CreateTempSubdirectory("blktap-plugin-skew-").FullName;

    [TearDown]
    public void TearDown()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    [Test]
    public void Run_PluginBuiltAgainstLaterAbstractionsVersion_LoadsAndServes()
    {
        var root = RepositoryRoot.Path;
        var project = Path.Combine(root, "tests/BlkTap.SamplePlugin/BlkTap.SamplePlugin.csproj");
        var output = Path.Combine(_dir, "out");
        // A configuration of its own keeps this build's obj/ and bin/ apart from the solution's Debug and Release.
        Peers.Run(Peers.Require("dotnet"), ["build", project, "-c", "VersionSkew", "-p:Version=9.9.9", "-o", output, "-v", "q"],
                TimeSpan.FromMinutes(10), workingDirectory: root)
            .EnsureSuccess("dotnet build of the sample plugin at version 9.9.9");
        var plugins = Path.Combine(_dir, "plugins");
        Directory.CreateDirectory(plugins);
        File.Copy(Path.Combine(output, "BlkTap.SamplePlugin.dll"), Path.Combine(plugins, "BlkTap.SamplePlugin.dll"));
        var referenced = System.Reflection.AssemblyName.GetAssemblyName(Path.Combine(output, "BlkTap.Abstractions.dll")).Version;
        Assert.That(referenced, Is.EqualTo(new Version(9, 9, 9, 0)), "the plugin was built against Abstractions 9.9.9");

        // As a child process, as users run it: in its own process the default load context resolves the host's
        // assemblies from blktap.deps.json, whose version check is what refused the plugin.
        var blktap = Path.Combine(TestContext.CurrentContext.TestDirectory, "blktap.dll");
        var run = Peers.Run(Peers.Require("dotnet"), [blktap, "run", "--plugins", plugins, "--tap", "count:label=skewed", "--tap", "mem:size=4M", "--frontends", "1", "--workload", "random:ops=50"],
            TimeSpan.FromMinutes(5));
        Assert.That(run.ExitCode, Is.EqualTo(0), run.StdOut + "\n" + run.StdErr);
        Assert.That(run.StdOut, Does.Contain("skewed:").And.Contain("Read="));
    }
}
