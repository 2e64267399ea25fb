using System.Xml.Linq;
using BlkTap.Testing;
using NUnit.Framework;

namespace BlkTap.Cli.Tests.Packaging;

/// <summary>
/// The tap-author kit as an author outside the repository gets it: <c>dotnet pack</c> of BlkTap.Testing and the
/// libraries it depends on into a feed, then a throwaway test project in a temporary directory that PackageReferences
/// BlkTap.Testing (the version Directory.Build.props sets) from that feed plus nuget.org, with a plugin-style tap and a
/// property test on the kit's chain rig and model; <c>dotnet test</c> must run it and pass it.
/// </summary>
[TestFixture]
[NonParallelizable]
public sealed class KitPackageTests
{
    /// <summary>The packages the kit needs, in the order a reader would list them.</summary>
    private static readonly string[] KitProjects =
    [
        "src/BlkTap.Abstractions/BlkTap.Abstractions.csproj", "src/BlkTap.Linux/BlkTap.Linux.csproj",
        "src/BlkTap.Trace/BlkTap.Trace.csproj", "src/BlkTap.Nbd/BlkTap.Nbd.csproj",
        "src/BlkTap.Examples/BlkTap.Examples.csproj", "src/BlkTap.Emulator/BlkTap.Emulator.csproj",
        "tests/BlkTap.Testing/BlkTap.Testing.csproj",
    ];

    private string _dir = "";

    [SetUp]
    public void SetUp() => _dir = Directory.CreateTempSubdirectory("blktap-kit-").FullName;

    [TearDown]
    public void TearDown()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    private static string RepoRoot => RepositoryRoot.Path;

    private static XDocument Props(string name) => XDocument.Load(Path.Combine(RepoRoot, name));

    private static string Version => Props("Directory.Build.props").Descendants("Version").Single().Value;

    private static string PackageVersion(string id) =>
        Props("Directory.Packages.props").Descendants("PackageVersion").Single(p => (string?)p.Attribute("Include") == id).Attribute("Version")!.Value;

    [Test]
    public void Pack_KitReferencedFromAFeedOutsideTheRepo_PropertyTestRunsAndPasses()
    {
        // The build the tests run on is already made: pack in its configuration, so only packing is new work.
        string config = TestContext.CurrentContext.TestDirectory.Contains("/Release/", StringComparison.Ordinal) ? "Release" : "Debug";
        var feed = Path.Combine(_dir, "feed");
        var filter = Path.Combine(_dir, "kit.slnf");
        File.WriteAllText(filter, System.Text.Json.JsonSerializer.Serialize(new
        {
            solution = new { path = Path.Combine(RepoRoot, "BlkTapSim.sln"), projects = KitProjects.Select(p => p.Replace('/', '\\')).ToArray() },
        }));
        var dotnet = Peers.Require("dotnet");
        Peers.Run(dotnet, ["pack", filter, "-c", config, "-o", feed, "-v", "q"], TimeSpan.FromMinutes(10), workingDirectory: RepoRoot)
            .EnsureSuccess("dotnet pack of the kit");
        foreach (var project in KitProjects)
        {
            string id = Path.GetFileNameWithoutExtension(project);
            Assert.That(File.Exists(Path.Combine(feed, $"{id}.{Version}.nupkg")), Is.True, $"{id}.{Version}.nupkg in {feed}");
        }

        var app = Path.Combine(_dir, "mytap");
        Directory.CreateDirectory(app);
        WriteProject(app, feed);
        // A packages folder of its own, so a BlkTap.Testing restored by an earlier run is never reused; the machine's
        // global folder is a fallback for everything else (NUnit, FsCheck, Microsoft.Extensions...).
        var env = new Dictionary<string, string> { ["NUGET_PACKAGES"] = Path.Combine(_dir, "packages") };
        var test = Peers.Run(dotnet, ["test", app, "--logger", "trx;LogFileName=results.trx", "--results-directory", Path.Combine(_dir, "results")],
            TimeSpan.FromMinutes(10), workingDirectory: app, environment: env);
        Assert.That(test.ExitCode, Is.EqualTo(0), $"dotnet test of the throwaway project:\n{test.StdOut}\n{test.StdErr}");

        var trx = XDocument.Load(Directory.GetFiles(Path.Combine(_dir, "results"), "results.trx", SearchOption.AllDirectories).Single());
        var counters = trx.Descendants().Single(e => e.Name.LocalName == "Counters");
        Assert.That((int)counters.Attribute("total")!, Is.EqualTo(1), "one property test ran");
        Assert.That((int)counters.Attribute("passed")!, Is.EqualTo(1), "and passed");
        var restored = Path.Combine(_dir, "packages", "blktap.testing", Version);
        Assert.That(Directory.Exists(restored), Is.True, $"BlkTap.Testing {Version} came from the feed into {restored}");
    }

    private void WriteProject(string app, string feed)
    {
        var global = Environment.GetEnvironmentVariable("NUGET_PACKAGES")
            ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        File.WriteAllText(Path.Combine(app, "nuget.config"), $"""
            <?xml version="1.0" encoding="utf-8"?>
            <configuration>
              <packageSources>
                <clear />
                <add key="kit" value="{feed}" />
                <add key="nuget.org" value="https://api.nuget.org/v3/index.json" />
              </packageSources>
              <fallbackPackageFolders>
                <add key="machine" value="{global}" />
              </fallbackPackageFolders>
            </configuration>
            """);
        File.WriteAllText(Path.Combine(app, "MyTap.Tests.csproj"), $"""
            <Project Sdk="Microsoft.NET.Sdk">
              <PropertyGroup>
                <TargetFramework>net10.0</TargetFramework>
                <Nullable>enable</Nullable>
                <ImplicitUsings>enable</ImplicitUsings>
                <IsTestProject>true</IsTestProject>
              </PropertyGroup>
              <ItemGroup>
                <PackageReference Include="BlkTap.Testing" Version="{Version}" />
                <PackageReference Include="Microsoft.NET.Test.Sdk" Version="{PackageVersion("Microsoft.NET.Test.Sdk")}" />
                <PackageReference Include="NUnit" Version="{PackageVersion("NUnit")}" />
                <PackageReference Include="NUnit3TestAdapter" Version="{PackageVersion("NUnit3TestAdapter")}" />
                <PackageReference Include="FsCheck.NUnit" Version="{PackageVersion("FsCheck.NUnit")}" />
              </ItemGroup>
            </Project>
            """);
        File.WriteAllText(Path.Combine(app, "MyTapTests.cs"), """
            using BlkTap;
            using BlkTap.Chains;
            using BlkTap.Examples;
            using BlkTap.Testing.Rigs;
            using FsCheck;
            using FsCheck.Fluent;

            public sealed class PassFactory : ITapFactory
            {
                public string Name => "pass";
                public string Description => "counts requests, passes them on";
                public bool IsTerminator => false;
                public IReadOnlyList<TapOptionInfo> Options { get; } = [];
                public ITap Create(TapSpec spec, TapContext context) => new PassTap();
            }

            public sealed class PassTap() : TapBase("pass"), IRequestHook
            {
                public long Seen;
                public HookResult OnRequest(TapRequest request) { Seen++; return HookResult.Pass; }
            }

            [NUnit.Framework.TestFixture]
            public sealed class MyTapTests
            {
                [FsCheck.NUnit.Property(MaxTest = 3)]
                public Property Pass_InFrontOfMem_DiskReadsAsTheModel() =>
                    Prop.ForAll(Arb.From(Gen.Choose(1, 10_000)), seed =>
                    {
                        var registry = ExampleTaps.CreateRegistry();
                        registry.Add(new PassFactory(), "mine");
                        using var chain = ChainRig.Build(registry, null, "pass", "mem:size=1M");
                        return Task.Run(async () =>
                        {
                            await using var rig = await ChainRig.StartAsync(chain.ToArray());
                            var model = new byte[1 << 20];
                            await ModelWrites.RunAsync(rig, model, seed, writes: 40, maxSectors: 16, queueDepth: 4);
                            var diff = ModelWrites.FirstDifference(model, await rig.ReadAllAsync());
                            return (diff == null && ((PassTap)chain[0]).Seen > 0).Label(diff ?? "");
                        }).GetAwaiter().GetResult();
                    });
            }
            """);
    }
}
