using BlkTap.Nbd;
using BlkTap.Testing.Nbd;
using BlkTap.Nbd.Tests.Client;
using NUnit.Framework;
using static BlkTap.Testing.Nbd.NbdTapTestSupport;
using BlkTap.Testing.Rigs;

namespace BlkTap.Nbd.Tests.Taps;

/// <summary>The nbd terminator when its server dies, comes back, or talks garbage: requests fail with ERROR, nothing hangs or crashes.</summary>
[TestFixture, NonParallelizable]
public class NbdTapFailureTests
{
    private string _dir = null!;

    [SetUp]
    public void SetUp() => _dir = NbdTestUtil.TempDir();

    [TearDown]
    public void TearDown() { try { Directory.Delete(_dir, true); } catch (IOException) { } }

    [Test]
    public async Task ServerKilledMidWorkload_PendingRequestsGetError_RestartedServerServesLaterRequests()
    {
        var uri = NbdUri.ForUnix(Path.Combine(_dir, "k.sock"));
        // rdelay holds every read for 10 s, so reads are surely pending when the server dies, however
        // slowly this test is scheduled (a short delay here would be a race the kill must win).
        var peer = Nbdkit(uri, "--filter=delay", "memory", "16M", "rdelay=10");
        var (rig, taps, diags) = await RigAsync([$"nbd:uri={uri}"], frontends: 1);
        try
        {
            var front = rig.Frontends[0];
            var ops = new List<Task<BlkifStatus>>();
            for (int i = 0; i < 32; i++)
                ops.Add(i % 2 == 0 ? front.ReadAsync((ulong)i * 8, new byte[4096]) : front.WriteAsync((ulong)i * 8, new byte[4096]));
            peer.Kill();
            var all = Task.WhenAll(ops);
            Assert.That(await Task.WhenAny(all, Task.Delay(60_000)), Is.SameAs(all), "every request is answered after the server died (no hang)\n" + rig.Describe());
            var statuses = all.Result;
            Assert.That(statuses, Has.Some.EqualTo(BlkifStatus.Error), "requests pending at the kill fail with ERROR");
            Assert.That(statuses, Is.All.EqualTo(BlkifStatus.Okay).Or.EqualTo(BlkifStatus.Error));

            // Dead server: requests fail fast (reconnect refused), never hang.
            var dead = front.ReadAsync(0, new byte[4096]);
            Assert.That(await Task.WhenAny(dead, Task.Delay(60_000)), Is.SameAs(dead));
            Assert.That(dead.Result, Is.EqualTo(BlkifStatus.Error));

            peer.Dispose();
            File.Delete(uri.SocketPath!);
            using var again = Nbdkit(uri, "memory", "16M");
            var deadline = DateTime.UtcNow.AddSeconds(60);
            BlkifStatus status;
            do
            {
                status = await front.WriteAsync(64, new byte[4096]);
                if (status != BlkifStatus.Okay) await Task.Delay(100);
            }
            while (status != BlkifStatus.Okay && DateTime.UtcNow < deadline);
            Assert.That(status, Is.EqualTo(BlkifStatus.Okay), "after the restart (and the backoff) requests succeed again; " + string.Join(" / ", diags.TakeLast(5)));
            var back = new byte[4096];
            Assert.That(await front.ReadAsync(64, back), Is.EqualTo(BlkifStatus.Okay));
            Assert.That(((NbdTap)taps[0]).Connects, Is.GreaterThanOrEqualTo(2));
        }
        finally
        {
            await NbdTapTestSupport.DisposeAsync(rig, taps);
            peer.Dispose();
        }
    }

    [Test]
    public async Task GarbageReply_AffectedRequestsGetError_ProcessAndLaterConnectionsSurvive()
    {
        var sock = Path.Combine(_dir, "g.sock");
        // A fake server: a correct handshake, then a reply with a wrong magic to the first request.
        using var fake = new ScriptedNbdServer(sock, s =>
        {
            ScriptedNbdServer.Greet(s, NbdHandshakeFlags.FixedNewstyle | NbdHandshakeFlags.NoZeroes);
            ScriptedNbdServer.AnswerGo(s, 1 << 20);
            var request = ScriptedNbdServer.ReadRequest(s);
            ScriptedNbdServer.Reply(s, 0xdeadbeef, 0, request.Cookie, new byte[request.Length]);
            ScriptedNbdServer.HoldOpen(s);
        });
        // timeout= bounds the first attach (which must beat it) and the reconnect (which must run into
        // it): long enough for a busy machine, short against the 60 s the test waits for the answer.
        var (rig, taps, diags) = await RigAsync([$"nbd:uri={fake.Uri},timeout=10"], frontends: 1);
        try
        {
            var front = rig.Frontends[0];
            Assert.That(front.Sectors, Is.EqualTo(2048UL));
            var read = front.ReadAsync(0, new byte[4096]);
            Assert.That(await Task.WhenAny(read, Task.Delay(60_000)), Is.SameAs(read), "the request is answered");
            Assert.That(read.Result, Is.EqualTo(BlkifStatus.Error));
            lock (diags) Assert.That(string.Join("\n", diags), Does.Contain("magic").IgnoreCase, "the diagnostic names the garbage");
            // The fake accepts no more handshakes: the reconnect times out (timeout=10) and the waiting request gets ERROR.
            var next = front.ReadAsync(0, new byte[4096]);
            Assert.That(await Task.WhenAny(next, Task.Delay(60_000)), Is.SameAs(next));
            Assert.That(next.Result, Is.EqualTo(BlkifStatus.Error));
        }
        finally { await NbdTapTestSupport.DisposeAsync(rig, taps); }
    }

    [Test]
    public async Task UnreachableServerAtAttach_SessionHasNoSizeAndRequestsGetError()
    {
        var uri = NbdUri.ForUnix(Path.Combine(_dir, "none.sock"));
        var (rig, taps, diags) = await RigAsync([$"nbd:uri={uri}"], frontends: 1);
        try
        {
            Assert.That(rig.Frontends[0].Sectors, Is.Zero);
            lock (diags) Assert.That(string.Join("\n", diags), Does.Contain("cannot connect to " + uri));
        }
        finally { await NbdTapTestSupport.DisposeAsync(rig, taps); }
    }
}
