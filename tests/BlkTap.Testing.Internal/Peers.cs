using System.Diagnostics;
using BlkTap.Bench;
using NUnit.Framework;

namespace BlkTap.Testing;

/// <summary>
/// Finds real peer programs (nbdkit, qemu-img, gcc, fio, ...) for tests. When <c>CI=true</c> or
/// <c>BLKTAP_REQUIRE_PEERS=1</c>, a missing peer fails the test; otherwise it is ignored with a message.
/// Thread-safe.
/// </summary>
public static class Peers
{
    /// <summary>True when a missing peer must fail the test instead of skipping it.</summary>
    public static bool Required =>
        string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase)
        || Environment.GetEnvironmentVariable("BLKTAP_REQUIRE_PEERS") == "1";

    /// <summary>Returns the full path of <paramref name="program"/> on PATH or in the usual bin and sbin directories, or null (<see cref="PeerPrograms.Find"/>).</summary>
    public static string? Find(string program) => PeerPrograms.Find(program);

    /// <summary>Returns the path of a peer program, or fails/ignores the test if it is missing.</summary>
    public static string Require(string program, string installHint = "run ./test.sh, which installs the test peers")
    {
        var path = Find(program);
        if (path != null) return path;
        var message = $"peer program '{program}' not found ({installHint})";
        if (Required) Assert.Fail(message);
        else Assert.Ignore(message);
        return null!; // unreachable
    }

    /// <summary>Fails or ignores the test when a file the test needs (a header, a library) is missing.</summary>
    public static string RequireFile(string path, string installHint = "run ./test.sh, which installs the test peers")
    {
        if (File.Exists(path)) return path;
        var message = $"required file '{path}' not found ({installHint})";
        if (Required) Assert.Fail(message);
        else Assert.Ignore(message);
        return null!;
    }

    /// <summary>Runs a program to completion and returns its exit code, stdout and stderr.</summary>
    public static ProcessResult Run(string program, IEnumerable<string> args, TimeSpan? timeout = null,
        string? workingDirectory = null, string? stdin = null, IReadOnlyDictionary<string, string>? environment = null)
    {
        var psi = new ProcessStartInfo(program)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = stdin != null,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory ?? Environment.CurrentDirectory,
        };
        foreach (var a in args) psi.ArgumentList.Add(a);
        if (environment != null) foreach (var (k, v) in environment) psi.Environment[k] = v;
        using var p = Process.Start(psi) ?? throw new InvalidOperationException($"cannot start {program}");
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (stdin != null) { p.StandardInput.Write(stdin); p.StandardInput.Close(); }
        if (!p.WaitForExit(timeout ?? TimeSpan.FromMinutes(2)))
        {
            try { p.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
            throw new TimeoutException($"{program} {string.Join(' ', args)} did not finish in time");
        }
        return new ProcessResult(p.ExitCode, stdout.Result, stderr.Result);
    }
}

/// <summary>The outcome of <see cref="Peers.Run"/>.</summary>
public sealed record ProcessResult(int ExitCode, string StdOut, string StdErr)
{
    /// <summary>Throws with both streams when the exit code is not zero.</summary>
    public ProcessResult EnsureSuccess(string what)
    {
        if (ExitCode != 0)
            throw new AssertionException($"{what} exited {ExitCode}\nstdout:\n{StdOut}\nstderr:\n{StdErr}");
        return this;
    }
}
