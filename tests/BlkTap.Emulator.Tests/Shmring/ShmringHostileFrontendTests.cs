using System.Net.Sockets;
using System.Text;
using BlkTap.Emulator;
using FsCheck;
using FsCheck.Fluent;
using NUnit.Framework;
using BlkTap.Testing.Shmring;

namespace BlkTap.Emulator.Tests.Shmring;

/// <summary>
/// Hostile shmring frontends against an in-process <see cref="ShmringServer"/>: broken handshakes
/// (raw sockets), and the C frontend rewriting a request after the tap took it, naming references
/// outside 1..N or trying to shrink the shared memory. Each is refused, answered ERROR or closed, with a log line, and the server goes on
/// to serve a well-behaved frontend afterwards.
/// </summary>
[TestFixture]
[Parallelizable(ParallelScope.None)]
public sealed class ShmringHostileFrontendTests
{
    private static IEnumerable<TestCaseData> BadHandshakes()
    {
        yield return new TestCaseData("blkif x86_16-abi 4\n", "unknown protocol 'x86_16-abi'").SetName("Handshake_UnknownProtocol_Refused");
        yield return new TestCaseData("blkif x86_64-abi 0\n", "N '0' is not a page count").SetName("Handshake_ZeroPages_Refused");
        yield return new TestCaseData("blkif x86_64-abi 04\n", "N '04' is not a page count").SetName("Handshake_LeadingZero_Refused");
        yield return new TestCaseData("blkif x86_64-abi 99999999999\n", "is not a page count").SetName("Handshake_HugeN_Refused");
        yield return new TestCaseData("blkif  x86_64-abi 4\n", "expected 'blkif").SetName("Handshake_DoubleSpace_Refused");
        yield return new TestCaseData("blkif x86_64-abi 4\r\n", "byte 0x0d").SetName("Handshake_CarriageReturn_Refused");
        yield return new TestCaseData(new string('A', 100), "no newline within the first 64 bytes").SetName("Handshake_TooLong_Refused");
        yield return new TestCaseData("blkif x86_64-abi 4", "no handshake line within").SetName("Handshake_NoNewlineThenSilence_RefusedAfterTimeout");
        yield return new TestCaseData("", "closed the connection without a handshake").SetName("Handshake_ImmediateHangup_Refused");
    }

    [TestCaseSource(nameof(BadHandshakes))]
    public async Task Handshake_Malformed_RefusedWithErrorLineAndLogThenServesGoodFrontend(string line, string why)
    {
        // Only the silent frontend needs a short handshake deadline (it is what the case tests); every
        // other case, and the good frontend after it, gets a generous one.
        await using var shm = new InProcessShm("mem:size=4M", handshakeTimeout: why.StartsWith("no handshake line", StringComparison.Ordinal) ? TimeSpan.FromMilliseconds(300) : null);
        var answer = RawHandshake(shm.Dir, Encoding.ASCII.GetBytes(line), hangUp: line.Length == 0);
        var result = await shm.NextResultAsync();
        Assert.That(result.End, Is.EqualTo(ShmringSessionEnd.Refused), shm.Log);
        Assert.That(result.Reason, Does.Contain(why), shm.Log);
        Assert.That(shm.Log, Does.Contain("refused a frontend: ").And.Contain(why));
        if (line.Length > 0) Assert.That(answer, Does.StartWith("error ").And.Contain(why).And.EndWith("\n"));
        await GoodFrontendAsync(shm);
    }

    [FsCheck.NUnit.Property(MaxTest = 60)]
    public Property Handshake_ArbitraryBytes_NeverConnectsUnlessExactlyTheGrammar()
    {
        var lines = Gen.OneOf(
            ArbMap.Default.GeneratorFor<byte[]>().Select(b => b.Take(80).ToArray()),
            Gen.Elements("blkif", "x86_64-abi", "x86_32-abi", " ", "0", "1", "4", "-1", "+2", "\n", "\t", "blkif x86_64-abi ", "\u00e9")
                .ListOf().Select(parts => Encoding.UTF8.GetBytes(string.Concat(parts)).Take(80).ToArray()));
        return Prop.ForAll(Arb.From(lines), bytes =>
        {
            Run().GetAwaiter().GetResult();

            async Task Run()
            {
                // Every case hangs up after its bytes, so none waits for the handshake deadline.
                await using var shm = new InProcessShm("mem:size=1M");
                int nl = Array.IndexOf(bytes, (byte)'\n');
                var first = nl < 0 ? bytes : bytes[..nl];
                var text = Encoding.Latin1.GetString(first);
                bool valid = nl >= 0 && IsGrammar(text, nl + 1);
                var answer = RawHandshake(shm.Dir, bytes, hangUp: true);
                var result = await shm.NextResultAsync();
                if (valid)
                {
                    Assert.That(answer, Does.StartWith("connected 2048 512 0\n"), text);
                    Assert.That(result.End, Is.Not.EqualTo(ShmringSessionEnd.Refused), shm.Log);
                }
                else
                {
                    Assert.That(result.End, Is.EqualTo(ShmringSessionEnd.Refused), $"'{text}': {shm.Log}");
                    Assert.That(answer, Does.Not.StartWith("connected"), text);
                }
            }
        });
    }

    /// <summary>
    /// The handshake grammar of docs/shmring.md, written out independently of the server's parser: exactly
    /// <c>blkif PROTOCOL N</c>, single spaces, N from 1 to 262144 without sign or leading zero, the line with its
    /// newline at most 64 bytes. (The generator joins "1" and "4" into "14", which is a valid N.)
    /// </summary>
    private static bool IsGrammar(string line, int bytesWithNewline)
    {
        if (bytesWithNewline > 64) return false;
        var m = System.Text.RegularExpressions.Regex.Match(line, "^blkif (x86_64-abi|x86_32-abi) ([1-9][0-9]{0,5})$");
        return m.Success && int.Parse(m.Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture) <= 262144;
    }

    [Test]
    public void IsGrammar_Examples_MatchDocsShmring()
    {
        Assert.That(IsGrammar("blkif x86_64-abi 14", 20), Is.True);
        Assert.That(IsGrammar("blkif x86_32-abi 262144", 24), Is.True);
        Assert.That(IsGrammar("blkif x86_32-abi 262145", 24), Is.False);
        Assert.That(IsGrammar("blkif x86_64-abi 04", 20), Is.False);
        Assert.That(IsGrammar("blkif x86_64-abi +2", 20), Is.False);
        Assert.That(IsGrammar("blkif  x86_64-abi 2", 20), Is.False);
        Assert.That(IsGrammar("blkif x86_64-abi 0", 19), Is.False);
    }

    [TestCaseSource(typeof(ShmHarness), nameof(ShmHarness.Abis))]
    public async Task Ring_RequestRewrittenAfterPush_ResponseAndDiskFollowTheCopy(BlkifProtocol protocol)
    {
        // A hook that holds every write until the frontend says it has rewritten the slot it came from
        // (slot 0 turns into a READ): the answer cannot overtake the rewrite, however slowly either side runs.
        FrontendProcess? frontend = null;
        var started = new TaskCompletionSource<FrontendProcess>(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var shm = new InProcessShm("mem:size=4M", runtime => runtime.RegisterRequestHook("hold", Hook.Request(r =>
        {
            if (r.Operation != BlkifOperation.Write) return HookResult.Pass;
            _ = Task.Run(async () => { await (await started.Task).WaitForLineAsync("rewritten"); r.Runtime.Resume(r); });
            return HookResult.Stolen;
        })));
        using (frontend = new FrontendProcess(protocol, shm.Dir, "rewrite"))
        {
            started.SetResult(frontend);
            Assert.That(await frontend.ExitAsync(), Is.EqualTo(0), $"{frontend.Output}\nlog:\n{shm.Log}");
            Assert.That(frontend.Output, Does.Contain("ok rewrite"));
        }
        var result = await shm.NextResultAsync();
        Assert.That(result.End, Is.EqualTo(ShmringSessionEnd.FrontendClosed), shm.Log);
    }

    [TestCaseSource(typeof(ShmHarness), nameof(ShmHarness.Abis))]
    public async Task Memory_FrontendTruncatesIt_KernelRefusesAndSessionGoesOn(BlkifProtocol protocol)
    {
        // The shared memory is the server's sealed memfd: the frontend's ftruncate and open(O_TRUNC)
        // fail with EPERM (no page can vanish under the server's mapping, so no SIGBUS), the
        // session's checked workload goes on, and the next frontend is served.
        await using var shm = new InProcessShm("mem:size=4M");
        var c = ShmHarness.RunFrontend(protocol, shm.Dir, "truncate", "200", "3");
        Assert.That(c.ExitCode, Is.EqualTo(0), $"{c.StdOut}{c.StdErr}\nlog:\n{shm.Log}");
        Assert.That(c.StdOut, Does.Contain("truncate refused: EPERM").And.Contain("ok truncate ops=400"));
        var result = await shm.NextResultAsync();
        Assert.That(result.End, Is.EqualTo(ShmringSessionEnd.FrontendClosed), shm.Log);
        Assert.That(result.Statistics!.Errors, Is.EqualTo(0), shm.Log);
        await GoodFrontendAsync(shm);
    }

    [TestCaseSource(typeof(ShmHarness), nameof(ShmHarness.Abis))]
    public async Task Ring_GrantRefsOutsideOneToN_ErrorResponsesNothingTouched(BlkifProtocol protocol)
    {
        await using var shm = new InProcessShm("mem:size=4M");
        var c = ShmHarness.RunFrontend(protocol, shm.Dir, "badgref");
        Assert.That(c.ExitCode, Is.EqualTo(0), $"{c.StdOut}{c.StdErr}\nlog:\n{shm.Log}");
        Assert.That(c.StdOut, Does.Contain("ok badgref errors=12"));
        var result = await shm.NextResultAsync();
        Assert.That(result.End, Is.EqualTo(ShmringSessionEnd.FrontendClosed), shm.Log);
        Assert.That(result.Statistics!.Rejected, Is.EqualTo(12));
        Assert.That(result.Statistics.BytesWritten, Is.EqualTo(0), "no refused write reached the disk");
        Assert.That(shm.Log, Does.Contain("grant mapping failed (NotGranted)"));
        await GoodFrontendAsync(shm);
    }

    [Test]
    public async Task Ring_BogusProducerIndex_SessionClosedThenServesGoodFrontend()
    {
        await using var shm = new InProcessShm("mem:size=4M");
        var c = ShmHarness.RunFrontend(BlkifProtocol.X86_32, shm.Dir, "bogusprod");
        Assert.That(c.ExitCode, Is.EqualTo(0), $"{c.StdOut}{c.StdErr}\nlog:\n{shm.Log}");
        var result = await shm.NextResultAsync();
        Assert.That(result.End, Is.EqualTo(ShmringSessionEnd.ProtocolError));
        Assert.That(result.Reason, Does.Contain("req_prod claims more than the ring's 32 slots"));
        Assert.That(shm.Log, Does.Contain("session closed: protocol error"));
        await GoodFrontendAsync(shm);
    }

    private static async Task GoodFrontendAsync(InProcessShm shm)
    {
        shm.Options.HandshakeTimeout = TimeSpan.FromSeconds(60);
        var c = ShmHarness.RunFrontend(BlkifProtocol.X86_64, shm.Dir, "workload", "200", "1");
        Assert.That(c.ExitCode, Is.EqualTo(0), $"a good frontend after the hostile one: {c.StdOut}{c.StdErr}\nlog:\n{shm.Log}");
        var result = await shm.NextResultAsync();
        Assert.That(result.End, Is.EqualTo(ShmringSessionEnd.FrontendClosed), shm.Log);
    }

    /// <summary>Connects, writes <paramref name="bytes"/>, optionally half-closes, and returns everything the tap answered until it closed.</summary>
    private static string RawHandshake(string dir, byte[] bytes, bool hangUp)
    {
        using var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        s.Connect(new UnixDomainSocketEndPoint(Path.Combine(dir, ShmringProtocol.EventChannelFileName)));
        s.ReceiveTimeout = 60_000;
        try { if (bytes.Length > 0) s.Send(bytes); } catch (SocketException) { /* the tap may close after 64 bytes */ }
        if (hangUp) s.Shutdown(SocketShutdown.Send);
        var answer = new StringBuilder();
        var buf = new byte[256];
        while (true)
        {
            int n;
            try { n = s.Receive(buf); } catch (SocketException) { break; }
            if (n == 0) break;
            answer.Append(Encoding.Latin1.GetString(buf, 0, n));
            // A connected session stays open until we hang up: stop after the answer line.
            if (answer.ToString().StartsWith("connected", StringComparison.Ordinal) && answer.ToString().Contains('\n')) break;
        }
        return answer.ToString();
    }
}
