using System.Text.Json;
using System.Text.RegularExpressions;
using System.Xml.Linq;
using BlkTap.Testing;
using NUnit.Framework;

namespace BlkTap.Cli.Tests.Packaging;

/// <summary>
/// The two ways the README installs blktap without the SDK's <c>dotnet run</c>: the .NET tool from
/// <c>dotnet pack tools/BlkTap.Cli</c>, installed into a tool path, and a self-contained single-file publish. Each is
/// built, installed and run as a user would: <c>--version</c> (the version Directory.Build.props sets), <c>demo</c>,
/// a plugin directory, and <c>bench --only nbd --quick</c>, which starts a second blktap (<c>nbd serve</c>) from the
/// installed one (it once ran <c>dotnet blktap.dll</c>, which a self-contained install does not have).
/// </summary>
[TestFixture]
[NonParallelizable]
public sealed class PackagingTests
{
    private string _dir = "";

    [SetUp]
    public void SetUp() => _dir = Directory.CreateTempSubdirectory("blktap-packaging-").FullName;

    [TearDown]
    public void TearDown()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    private static string RepoRoot => RepositoryRoot.Path;

    private static string Cli => Path.Combine(RepoRoot, "tools/BlkTap.Cli/BlkTap.Cli.csproj");

    /// <summary>The one version, read from Directory.Build.props.</summary>
    private static string Version =>
        XDocument.Load(Path.Combine(RepoRoot, "Directory.Build.props")).Descendants("Version").Single().Value;

    private static ProcessResult Dotnet(params string[] args) =>
        Peers.Run(Peers.Require("dotnet"), args, TimeSpan.FromMinutes(10), workingDirectory: RepoRoot);

    [Test]
    public void Pack_ToolInstalledIntoToolPath_EveryCheckedVerbRuns()
    {
        var feed = Path.Combine(_dir, "feed");
        Dotnet("pack", Cli, "-c", "Release", "-o", feed, "-v", "q")
            .EnsureSuccess("dotnet pack");
        Assert.That(File.Exists(Path.Combine(feed, $"BlkTap.Cli.{Version}.nupkg")), Is.True, $"BlkTap.Cli.{Version}.nupkg in {feed}");
        var tools = Path.Combine(_dir, "tools");
        Dotnet("tool", "install", "--tool-path", tools, "--add-source", feed, "BlkTap.Cli", "--version", Version).EnsureSuccess("dotnet tool install");
        RunsAsInstalled(Path.Combine(tools, "blktap"));
    }

    [Test]
    public void Publish_SelfContainedSingleFile_EveryCheckedVerbRuns()
    {
        var output = Path.Combine(_dir, "publish");
        Dotnet("publish", Cli, "-c", "Release", "-r", "linux-x64", "--self-contained", "-p:PublishSingleFile=true", "-o", output, "-v", "q")
            .EnsureSuccess("dotnet publish");
        var blktap = Path.Combine(output, "blktap");
        Assert.That(Directory.GetFiles(output, "*.dll"), Is.Empty, "a single file: no assemblies beside it");
        RunsAsInstalled(blktap);
    }

    private void RunsAsInstalled(string blktap)
    {
        Assert.That(File.Exists(blktap), Is.True, blktap);
        var version = Peers.Run(blktap, ["--version"]).EnsureSuccess("blktap --version");
        Assert.That(version.StdOut.Trim(), Does.Match("^" + Regex.Escape(Version) + @"(\+[0-9a-f]+)?$"));

        var demo = Peers.Run(blktap, ["demo"], TimeSpan.FromMinutes(5)).EnsureSuccess("blktap demo");
        Assert.That(demo.StdOut + demo.StdErr, Does.Contain("every read matched the model"));

        // The pictures: SkiaSharp's native library loads from the installed tool (beside it, or extracted from the single file).
        var trace = Path.Combine(_dir, "cap.bt");
        Peers.Run(blktap, ["run", "--tap", $"dump:trace={trace},quiet=true", "--tap", "mem:size=8M", "--workload", "random:ops=50", "--deterministic"]).EnsureSuccess("blktap run (capture)");
        var png = Path.Combine(_dir, "replay.png");
        Peers.Run(blktap, ["replay", trace, "--tap", "mem", "--timing", "fast", "--plot", png, "--json"], TimeSpan.FromMinutes(2)).EnsureSuccess("blktap replay --plot");
        Assert.That(File.ReadAllBytes(png).AsSpan(0, 4).ToArray(), Is.EqualTo(new byte[] { 0x89, 0x50, 0x4E, 0x47 }), "a PNG");

        var plugins = Path.Combine(_dir, "plugins");
        Directory.CreateDirectory(plugins);
        File.Copy(SamplePlugin(), Path.Combine(plugins, "BlkTap.SamplePlugin.dll"));
        var taps = Peers.Run(blktap, ["taps", "--plugins", plugins]).EnsureSuccess("blktap taps --plugins");
        Assert.That(taps.StdOut, Does.Contain("count").And.Contain("[plugin:"));

        Peers.Require("fio", "apt-get install fio");
        Peers.Require("nbdkit", "apt-get install nbdkit");
        var bench = Peers.Run(blktap, ["bench", "--only", "nbd", "--quick", "--json"], TimeSpan.FromMinutes(10), workingDirectory: _dir)
            .EnsureSuccess("blktap bench --only nbd --quick");
        using var json = JsonDocument.Parse(bench.StdOut);
        var line = json.RootElement.GetProperty("results").EnumerateArray()
            .SingleOrDefault(r => r.GetProperty("name").GetString() == "nbd export vs nbdkit: 4 KiB randread, iodepth 32");
        Assert.That(line.ValueKind, Is.EqualTo(JsonValueKind.Object), "the NBD randread line:\n" + bench.StdOut + bench.StdErr);
        Assert.That(line.GetProperty("ours").ValueKind, Is.EqualTo(JsonValueKind.Number), "our server (started by the installed blktap) answered:\n" + bench.StdOut + bench.StdErr);
        Assert.That(line.GetProperty("ours").GetDouble(), Is.GreaterThan(0));
    }

    private static string SamplePlugin()
    {
        var root = TestContext.CurrentContext.TestDirectory;
        var config = root.Contains("/Release/") ? "Release" : "Debug";
        var built = Path.GetFullPath(Path.Combine(root, "../../../../BlkTap.SamplePlugin/bin", config, "net10.0/BlkTap.SamplePlugin.dll"));
        if (!File.Exists(built)) Assert.Fail($"the sample plugin was not built: {built} (build the solution)");
        return built;
    }
}
