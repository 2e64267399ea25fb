using BlkTap.Testing.Shmring;
using NUnit.Framework;

namespace BlkTap.Cli.Tests.BadInput;

/// <summary>
/// Another process truncating the shared memory <c>blktap shm serve</c> is serving (what used to kill the server with
/// SIGBUS): the memory is the server's sealed memfd, so the kernel refuses the truncation, the session goes on
/// untouched and the server serves the next frontend.
/// </summary>
[TestFixture]
[Parallelizable(ParallelScope.None)]
public sealed class ShmTruncationCliTests
{
    [Test]
    public async Task ShmServe_MemoryTruncatedByAnotherProcessWhileServed_RefusedAndServerSurvives()
    {
        var dir = ShmHarness.NewDir();
        using var serve = ShmHarness.StartServe(dir, "--keep-serving", "--tap", "mem:size=4M");
        using (var first = new FrontendProcess(BlkifProtocol.X86_64, dir, "pause", "200", "7"))
        {
            await first.WaitForLineAsync("paused");
            // The session's memory as any process of this user reaches it: the server's descriptor under /proc.
            var fds = new DirectoryInfo($"/proc/{serve.Process.Id}/fd").GetFileSystemInfos()
                .Where(f => f.LinkTarget?.StartsWith("/memfd:blktap-shm-", StringComparison.Ordinal) == true).ToList();
            Assert.That(fds, Has.Count.EqualTo(1), "one session, one shared memory");
            var path = fds[0].FullName;
            // NOTE: .NET reports EPERM as UnauthorizedAccessException wrapping an IOException "Operation not permitted".
            var shrink = Assert.Throws<UnauthorizedAccessException>(() => { using var f = new FileStream(path, FileMode.Open, FileAccess.ReadWrite); f.SetLength(4096); });
            Assert.That(shrink!.InnerException?.Message, Does.Contain("Operation not permitted"));
            var truncate = Assert.Throws<UnauthorizedAccessException>(() => { using var f = new FileStream(path, FileMode.Truncate, FileAccess.Write); });
            Assert.That(truncate!.InnerException?.Message, Does.Contain("Operation not permitted"));
            using (var read = new FileStream(path, FileMode.Open, FileAccess.Read))
                Assert.That(read.Length, Is.EqualTo((1 + 32 * 11) * 4096L), "the size stayed as the server sealed it");
            first.Continue();
            Assert.That(await first.ExitAsync(), Is.EqualTo(0), "the session after the truncation attempts:\n" + first.Output + "\nserve:\n" + serve.StdErr);
            Assert.That(first.Output, Does.Contain("ok pause ops=400"));
        }
        var next = ShmHarness.RunFrontend(BlkifProtocol.X86_64, dir, "workload", "200", "8");
        Assert.That(next.ExitCode, Is.EqualTo(0), $"the next frontend: {next.StdOut}{next.StdErr}\nserve:\n{serve.StdErr}");
        Assert.That(serve.Process.HasExited, Is.False, "the server survived");
        serve.Signal("TERM");
        var outcome = serve.Wait(TimeSpan.FromSeconds(60));
        Assert.That(serve.Process.ExitCode, Is.EqualTo(0), outcome);
        Assert.That(serve.StdOut.Split('\n').Count(l => l.StartsWith("session FrontendClosed:", StringComparison.Ordinal) && l.Contains(" 0 errors, 0 rejected")), Is.EqualTo(2), outcome);
    }
}
