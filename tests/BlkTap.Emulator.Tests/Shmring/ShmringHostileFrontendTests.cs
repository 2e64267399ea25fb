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
/// (raw sockets), and the C frontend rewriting a request after the tap took it or naming references
/// outside 1..N. Each is refused, answered ERROR or closed, with a log line, and the server goes on
/// to serve a well-behaved frontend afterwards.
/// </summary>
[TestFixture]
[Parallelizable(ParallelScope.None)]
public sealed class ShmringHostileFrontendTests
{
    private static IEnumerable<TestCaseData> BadHandshakes()
    {
        yield return new TestCaseData("blkif x86_16-abi 4\n", 0, "unknown protocol 'x86_16-abi'").SetName("Handshake_UnknownProtocol_Refused");
        yield return new TestCaseData("blkif x86_64-abi 0\n", 0, "N '0' is not a page count").SetName("Handshake_ZeroPages_Refused");
        yield return new TestCaseData("blkif x86_64-abi 04\n", 8, "N '04' is not a page count").SetName("Handshake_LeadingZero_Refused");
        yield return new TestCaseData("blkif x86_64-abi 99999999999\n", 8, "is not a page count").SetName("Handshake_HugeN_Refused");
        yield return new TestCaseData("blkif  x86_64-abi 4\n", 8, "expected 'blkif").SetName("Handshake_DoubleSpace_Refused");
        yield return new TestCaseData("blkif x86_64-abi 4\r\n", 8, "byte 0x0d").SetName("Handshake_CarriageReturn_Refused");
        yield return new TestCaseData("blkif x86_64-abi 5\n", 2, "smaller than the 6 pages").SetName("Handshake_FileSmallerThanDeclared_Refused");
        yield return new TestCaseData("blkif x86_32-abi 3\n", -1, "no such file").SetName("Handshake_NoMemFile_Refused");
        yield return new TestCaseData(new string('A', 100), 8, "no newline within the first 64 bytes").SetName("Handshake_TooLong_Refused");
        yield return new TestCaseData("blkif x86_64-abi 4", 8, "no handshake line within").SetName("Handshake_NoNewlineThenSilence_RefusedAfterTimeout");
        yield return new TestCaseData("", 8, "closed the connection without a handshake").SetName("Handshake_ImmediateHangup_Refused");
    }

    [TestCaseSource(nameof(BadHandshakes))]
    public async Task Handshake_Malformed_RefusedWithErrorLineAndLogThenServesGoodFrontend(string line, int memPages, string why)
    {
        // Only the silent frontend needs a short handshake deadline (it is what the case tests); every
        // other case, and the good frontend after it, gets a generous one.
        await using var shm = new InProcessShm("mem:size=4M", handshakeTimeout: why.StartsWith("no handshake line", StringComparison.Ordinal) ? TimeSpan.FromMilliseconds(300) : null);
        if (memPages >= 0) File.WriteAllBytes(Path.Combine(shm.Dir, ShmringProtocol.MemFileName), new byte[memPages * 4096]);
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
                File.WriteAllBytes(Path.Combine(shm.Dir, ShmringProtocol.MemFileName), new byte[5 * 4096]);
                int nl = Array.IndexOf(bytes, (byte)'\n');
                var first = nl < 0 ? bytes : bytes[..nl];
                var text = Encoding.Latin1.GetString(first);
                bool valid = nl >= 0 && text is "blkif x86_64-abi 1" or "blkif x86_64-abi 2" or "blkif x86_64-abi 3" or "blkif x86_64-abi 4"
                    or "blkif x86_32-abi 1" or "blkif x86_32-abi 2" or "blkif x86_32-abi 3" or "blkif x86_32-abi 4";
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

    [TestCaseSource(typeof(ShmHarness), nameof(ShmHarness.Abis))]
    public async Task Ring_RequestRewrittenAfterPush_ResponseAndDiskFollowTheCopy(BlkifProtocol protocol)
    {
        // A hook that holds every write until the frontend has rewritten the slot it came from (slot 0
        // turns into a READ): the answer cannot overtake the rewrite, however slowly either side runs.
        string? mem = null;
        await using var shm = new InProcessShm("mem:size=4M", runtime => runtime.RegisterRequestHook("hold", Hook.Request(r =>
        {
            if (r.Operation != BlkifOperation.Write) return HookResult.Pass;
            _ = Task.Run(async () => { await SlotRewrittenAsync(mem!); r.Runtime.Resume(r); });
            return HookResult.Stolen;
        })));
        mem = Path.Combine(shm.Dir, ShmringProtocol.MemFileName);
        var c = ShmHarness.RunFrontend(protocol, shm.Dir, "rewrite");
        Assert.That(c.ExitCode, Is.EqualTo(0), $"{c.StdOut}{c.StdErr}\nlog:\n{shm.Log}");
        Assert.That(c.StdOut, Does.Contain("ok rewrite"));
        var result = await shm.NextResultAsync();
        Assert.That(result.End, Is.EqualTo(ShmringSessionEnd.FrontendClosed), shm.Log);
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

    [TestCaseSource(typeof(ShmHarness), nameof(ShmHarness.Abis))]
    public async Task Ring_StaleIndicesFromEarlierSession_RefusedAtHandshakeThenServesGoodFrontend(BlkifProtocol protocol)
    {
        // A frontend that reconnects on the file of a session that answered 394 requests without
        // running SHARED_RING_INIT again: the server's first read of page 0 (after the handshake)
        // must see a fresh ring, and says why it refuses this one instead of failing it later.
        await using var shm = new InProcessShm("mem:size=4M");
        var ring = new byte[5 * 4096];
        BitConverter.TryWriteBytes(ring.AsSpan(0), 394u);   // req_prod
        BitConverter.TryWriteBytes(ring.AsSpan(4), 395u);   // req_event
        BitConverter.TryWriteBytes(ring.AsSpan(8), 394u);   // rsp_prod
        BitConverter.TryWriteBytes(ring.AsSpan(12), 395u);  // rsp_event
        File.WriteAllBytes(Path.Combine(shm.Dir, ShmringProtocol.MemFileName), ring);
        var answer = RawHandshake(shm.Dir, Encoding.ASCII.GetBytes($"blkif {protocol.ToName()} 4\n"), hangUp: false);
        var result = await shm.NextResultAsync();
        Assert.That(answer, Does.StartWith("error the ring on page 0 was not initialised for this session: rsp_prod is 394 (req_prod 394)"), shm.Log);
        Assert.That(answer, Does.Contain("SHARED_RING_INIT"));
        Assert.That(result.End, Is.EqualTo(ShmringSessionEnd.Refused), shm.Log);
        Assert.That(shm.Log, Does.Contain("refused: the ring on page 0 was not initialised"));
        await GoodFrontendAsync(shm);
    }

    /// <summary>Completes once ring slot 0's operation byte (offset 64 on both ABIs) reads BLKIF_OP_READ (0), or after 60 s.</summary>
    private static async Task SlotRewrittenAsync(string mem)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        var op = new byte[1];
        while (DateTime.UtcNow < deadline)
        {
            using (var f = new FileStream(mem, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete))
            {
                f.Position = 64;
                if (f.Read(op) == 1 && op[0] == (byte)BlkifOperation.Read) return;
            }
            await Task.Delay(5);
        }
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
