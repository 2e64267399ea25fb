using NUnit.Framework;

namespace BlkTap.Testing;

/// <summary>The checkout the tests run from: the directory above the test assembly that holds BlkTapSim.sln. Thread-safe.</summary>
public static class RepositoryRoot
{
    /// <summary>The repository's root directory; throws when the tests do not run from inside a checkout.</summary>
    public static string Path
    {
        get
        {
            for (var d = new DirectoryInfo(TestContext.CurrentContext.TestDirectory); d != null; d = d.Parent)
                if (File.Exists(System.IO.Path.Combine(d.FullName, "BlkTapSim.sln"))) return d.FullName;
            throw new InvalidOperationException("BlkTapSim.sln not found above the test directory");
        }
    }
}
