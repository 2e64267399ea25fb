using System.Buffers.Binary;
using System.Net.Sockets;
using BlkTap.Nbd;
using BlkTap.Testing;
using NUnit.Framework;
using static BlkTap.Nbd.Tests.Server.RawNbd;
using BlkTap.Testing.Nbd;

namespace BlkTap.Nbd.Tests.Server;

/// <summary>
/// The socket edge cases of the loop-served transmission phase, on both server kinds: messages split at any byte,
/// requests pipelined behind the handshake, replies larger than the socket buffer read slowly, a client that
/// half-closes, a client that never reads its replies.
/// </summary>
[TestFixture(NbdServerKind.Memory)]
[TestFixture(NbdServerKind.Chain)]
[NonParallelizable]
public class NbdTransmissionEdgeTests(NbdServerKind kind) : NbdServerFixture(kind)
{
    [Test]
    public void Requests_SplitIntoRandomPieces_AllServedInOrderOfBytes()
    {
        var backend = new MemoryNbdExportBackend(1 << 20);
        var sock = Serve(backend);
        using var s = RawTransmission(sock, out _);
        var rnd = new Random(7);
        var stream = new List<byte>();
        var expected = new byte[1 << 20];
        var written = new byte[1 << 20]; // how many writes covered each byte (capped at 2)
        for (int i = 0; i < 40; i++)
        {
            // Aligned and unaligned writes of assorted sizes (1 byte to 40 KiB), each followed by nothing else.
            uint len = (uint)(i % 3 == 0 ? rnd.Next(1, 600) : 512 * rnd.Next(1, 80));
            ulong off = (ulong)(i % 4 == 0 ? rnd.Next(0, (1 << 20) - (int)len) : 512 * rnd.Next(0, ((1 << 20) - (int)len) / 512));
            var data = new byte[len];
            rnd.NextBytes(data);
            stream.AddRange(Header(NbdCommand.Write, (ulong)i, off, len));
            stream.AddRange(data);
            data.CopyTo(expected, (int)off);
            for (int k = 0; k < len; k++) written[off + (ulong)k] = (byte)Math.Min(2, written[off + (ulong)k] + 1);
        }
        // Send the whole stream in pieces of 1..50 bytes: every header and payload is cut somewhere.
        var bytes = stream.ToArray();
        for (int at = 0; at < bytes.Length;)
        {
            int n = Math.Min(bytes.Length - at, rnd.Next(1, 50));
            s.Send(bytes, at, n, SocketFlags.None);
            at += n;
        }
        var cookies = new HashSet<ulong>();
        for (int i = 0; i < 40; i++)
        {
            var reply = ReadReply(s);
            Assert.That(reply.Error, Is.EqualTo(0u));
            Assert.That(cookies.Add(reply.Cookie), Is.True);
        }
        // Overlapping writes in flight together may land in any order (proto.md), so the check is that the export
        // reads back as it holds, and that the non-overlapping bytes are the model's.
        var buf = new byte[1 << 20];
        Assert.That(Request(s, NbdCommand.Read, 99, 0, 1 << 20, readInto: buf).Error, Is.EqualTo(0u));
        Assert.That(buf.AsSpan().SequenceEqual(backend.Data), Is.True, "read back differs from the export");
        for (int i = 0; i < expected.Length; i++)
            if (written[i] == 1) Assert.That(backend.Data[i], Is.EqualTo(expected[i]), $"byte {i} (written once)");
    }

    [Test]
    public void FirstRequests_SentWithTheLastHandshakeMessage_Served()
    {
        var backend = new MemoryNbdExportBackend(1 << 20);
        backend.Data.AsSpan(4096, 512).Fill(0x5a);
        var sock = Serve(backend);
        using var s = Negotiating(sock);
        // NBD_OPT_GO plus two requests in one send: the server's handshake reads past its end.
        var go = GoData("");
        var msg = new byte[16 + go.Length];
        BinaryPrimitives.WriteUInt64BigEndian(msg, NbdMagic.IHaveOpt);
        BinaryPrimitives.WriteUInt32BigEndian(msg.AsSpan(8), (uint)NbdOption.Go);
        BinaryPrimitives.WriteUInt32BigEndian(msg.AsSpan(12), (uint)go.Length);
        go.CopyTo(msg, 16);
        s.Send([.. msg, .. Header(NbdCommand.Read, 1, 4096, 512), .. Header(NbdCommand.Flush, 2, 0, 0)]);
        while (true)
        {
            var (type, _) = ReadOptionReply(s, (uint)NbdOption.Go);
            if (type == NbdOptionReplyType.Ack) break;
            Assert.That(type, Is.EqualTo(NbdOptionReplyType.Info));
        }
        var seen = new Dictionary<ulong, uint>();
        for (int i = 0; i < 2; i++)
        {
            var reply = ReadReply(s);
            seen[reply.Cookie] = reply.Error;
            if (reply.Cookie == 1)
            {
                var data = new byte[512];
                ReadExact(s, data);
                Assert.That(data, Is.All.EqualTo((byte)0x5a));
            }
        }
        Assert.That(seen, Is.EquivalentTo(new Dictionary<ulong, uint> { [1] = 0, [2] = 0 }));
    }

    [Test]
    public void LargeReads_ClientReadsSlowly_EveryByteArrives()
    {
        var backend = new MemoryNbdExportBackend(32 << 20);
        new Random(3).NextBytes(backend.Data);
        var sock = Serve(backend, maxInFlight: 4);
        using var s = RawTransmission(sock, out _);
        const int count = 12, size = 4 << 20; // 48 MiB of replies through a socket buffer of a few MiB, 4 in flight
        for (int i = 0; i < count; i++) s.Send(Header(NbdCommand.Read, (ulong)i, (ulong)(i % 8) * size, size));
        var buf = new byte[size];
        for (int i = 0; i < count; i++)
        {
            Thread.Sleep(i < 3 ? 100 : 0); // the server meets a full socket and must wait for it to drain
            var reply = ReadReply(s);
            Assert.That(reply.Error, Is.EqualTo(0u));
            ReadExact(s, buf);
            Assert.That(buf.AsSpan().SequenceEqual(backend.Data.AsSpan((int)(reply.Cookie % 8) * size, size)), Is.True, $"reply {reply.Cookie}");
        }
    }

    [Test]
    public void MixedReads_LargeWrittenEagerlySmallPerPass_EachReplyWholeAndMatchingItsCookie()
    {
        // Large replies (>= 64 KiB) leave as soon as they are ready, small ones at the end of the pass; interleaved and
        // pipelined, with the client pausing so that some eager writes meet a full socket, every reply must still
        // arrive whole, once, with its own data.
        var backend = new MemoryNbdExportBackend(16 << 20);
        new Random(5).NextBytes(backend.Data);
        var sock = Serve(backend, maxInFlight: 16);
        using var s = RawTransmission(sock, out _);
        var rng = new Random(11);
        const int count = 96;
        var want = new (ulong Offset, int Length)[count];
        for (int i = 0; i < count; i++)
        {
            int len = rng.Next(3) switch { 0 => 4096, 1 => 64 * 1024, _ => 1 << 20 };
            ulong off = (ulong)rng.Next(0, (16 << 20) - len) / 512 * 512;
            want[i] = (off, len);
            s.Send(Header(NbdCommand.Read, (ulong)i, off, (uint)len));
        }
        var seen = new bool[count];
        var buf = new byte[1 << 20];
        for (int i = 0; i < count; i++)
        {
            if (i % 16 == 0) Thread.Sleep(50);
            var reply = ReadReply(s);
            Assert.That(reply.Error, Is.EqualTo(0u));
            Assert.That(reply.Cookie, Is.LessThan((ulong)count));
            int c = (int)reply.Cookie;
            Assert.That(seen[c], Is.False, $"reply {c} twice");
            seen[c] = true;
            var data = buf.AsSpan(0, want[c].Length);
            ReadExact(s, data);
            Assert.That(data.SequenceEqual(backend.Data.AsSpan((int)want[c].Offset, want[c].Length)), Is.True, $"reply {c}");
        }
    }

    [Test]
    public void HalfClose_AfterPipelinedWrites_AllAnsweredThenClosed()
    {
        var backend = new MemoryNbdExportBackend(4 << 20);
        var sock = Serve(backend);
        using var s = RawTransmission(sock, out _);
        var data = NbdTestUtil.RandomBytes(64 << 10, 4);
        for (int i = 0; i < 16; i++)
        {
            s.Send(Header(NbdCommand.Write, (ulong)i, (ulong)i * (64 << 10), 64 << 10));
            s.Send(data);
        }
        s.Shutdown(SocketShutdown.Send); // the client is done sending but still reads its replies
        var cookies = new HashSet<ulong>();
        for (int i = 0; i < 16; i++)
        {
            var reply = ReadReply(s);
            Assert.That(reply.Error, Is.EqualTo(0u));
            cookies.Add(reply.Cookie);
        }
        Assert.That(cookies, Has.Count.EqualTo(16));
        Assert.That(ClosedByServer(s), Is.True, "the server closes after the last reply");
        for (int i = 0; i < 16; i++) Assert.That(backend.Data.AsSpan(i * (64 << 10), 64 << 10).SequenceEqual(data), Is.True);
    }

    [Test]
    public async Task StopAsync_ClientNeverReadsReplies_CancellationAbortsAndClosesConnection()
    {
        var sock = Serve(new MemoryNbdExportBackend(8 << 20));
        using var s = RawTransmission(sock, out _);
        for (int i = 0; i < 40; i++) s.Send(Header(NbdCommand.Read, (ulong)i, 0, 4 << 20));
        await Task.Delay(200);
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(1));
        var server = _host!.Server;
        Assert.That(async () => await server.StopAsync(cts.Token), Throws.InstanceOf<OperationCanceledException>());
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (server.ActiveConnections > 0 && DateTime.UtcNow < deadline) await Task.Delay(20);
        Assert.That(server.ActiveConnections, Is.EqualTo(0), "aborted connection closed");
    }

    [Test]
    public void ClientVanishes_WithRequestsInFlight_OtherClientsKeepWorking()
    {
        var backend = new MemoryNbdExportBackend(8 << 20);
        var sock = Serve(backend);
        using var good = RawTransmission(sock, out _);
        for (int round = 0; round < 5; round++)
        {
            var gone = RawTransmission(sock, out _);
            for (int i = 0; i < 20; i++) gone.Send(Header(NbdCommand.Read, (ulong)i, 0, 1 << 20));
            gone.LingerState = new LingerOption(true, 0);
            gone.Close(); // reset with replies pending
        }
        var payload = NbdTestUtil.RandomBytes(4096, 1);
        Assert.That(Request(good, NbdCommand.Write, 1, 8192, 4096, payload).Error, Is.EqualTo(0u));
        var back = new byte[4096];
        Assert.That(Request(good, NbdCommand.Read, 2, 8192, 4096, readInto: back).Error, Is.EqualTo(0u));
        Assert.That(back, Is.EqualTo(payload));
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (_host!.Server.ActiveConnections > 1 && DateTime.UtcNow < deadline) Thread.Sleep(20);
        Assert.That(_host.Server.ActiveConnections, Is.EqualTo(1), "the vanished clients' connections were closed");
    }
}

/// <summary>The chain kind's direct path (socket, hooks and disk on the chain's loop thread), where the loop can be asked.</summary>
[TestFixture]
[NonParallelizable]
public class NbdDirectPathTests() : NbdServerFixture(NbdServerKind.Chain)
{
    [Test]
    public async Task DirectPath_SteadyState_AllocatesNothingPerRequestOnTheLoop()
    {
        var sock = Serve(new MemoryNbdExportBackend(4 << 20));
        var runtime = _host!.Runtime!;
        using var s = RawTransmission(sock, out _);
        var payload = NbdTestUtil.RandomBytes(4096, 2);
        var batch = new List<byte>();
        for (int i = 0; i < 32; i++)
        {
            bool write = i % 2 == 0;
            batch.AddRange(Header(write ? NbdCommand.Write : NbdCommand.Read, (ulong)i, (ulong)(i * 7 % 1024) * 4096, 4096));
            if (write) batch.AddRange(payload);
        }
        var bytes = batch.ToArray();
        var sink = new byte[16 + 4096];
        void Round()
        {
            s.Send(bytes);
            for (int i = 0; i < 32; i++)
            {
                var reply = ReadReply(s);
                Assert.That(reply.Error, Is.EqualTo(0u));
                if (reply.Cookie % 2 == 1) ReadExact(s, sink.AsSpan(0, 4096));
            }
        }
        for (int i = 0; i < 100; i++) Round(); // warm: slots, pools and tiered JIT settle
        long before = await LoopProbe.AllocatedBytesAsync(runtime);
        const int rounds = 300;
        for (int i = 0; i < rounds; i++) Round();
        long after = await LoopProbe.AllocatedBytesAsync(runtime);
        double perRequest = (after - before) / (rounds * 32.0);
        TestContext.Out.WriteLine($"loop allocated {after - before} bytes for {rounds * 32} requests");
        // The two Posts above are the only allocations expected (a closure and a work item each).
        Assert.That(perRequest, Is.LessThan(1.0), $"{after - before} bytes allocated on the loop for {rounds * 32} requests");
    }
}
