using System.Diagnostics;
using NUnit.Framework;

namespace BlkTap.Testing;

/// <summary>tests/BlkTap.CrashChild, the process the crash tests kill (built on demand when the solution build left it out).</summary>
public static class CrashChild
{
    /// <summary>The path of BlkTap.CrashChild.dll in the test's configuration.</summary>
    public static string Dll()
    {
        var dir = new DirectoryInfo(TestContext.CurrentContext.TestDirectory);
        string config = dir.FullName.Contains($"{Path.DirectorySeparatorChar}Release{Path.DirectorySeparatorChar}") ? "Release" : "Debug";
        while (dir != null && !File.Exists(Path.Combine(dir.FullName, "BlkTapSim.sln"))) dir = dir.Parent;
        Assert.That(dir, Is.Not.Null, "repository root (BlkTapSim.sln) not found above the test directory");
        string project = Path.Combine(dir!.FullName, "tests", "BlkTap.CrashChild");
        string dll = Path.Combine(project, "bin", config, "net10.0", "BlkTap.CrashChild.dll");
        if (!File.Exists(dll))
        {
            using var build = Process.Start(new ProcessStartInfo("dotnet", ["build", project, "-c", config, "-v", "q"]) { RedirectStandardOutput = true, RedirectStandardError = true })!;
            string log = build.StandardOutput.ReadToEnd() + build.StandardError.ReadToEnd();
            build.WaitForExit();
            Assert.That(build.ExitCode, Is.EqualTo(0), "building the crash child failed: " + log);
        }
        return dll;
    }
}
