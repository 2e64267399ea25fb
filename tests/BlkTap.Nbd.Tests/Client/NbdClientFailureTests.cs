using System.Buffers.Binary;
using System.Net.Sockets;
using System.Text;
using BlkTap.Nbd;
using BlkTap.Testing;
using NUnit.Framework;
using BlkTap.Testing.Nbd;
using BlkTap.Testing.Rigs;

namespace BlkTap.Nbd.Tests.Client;

/// <summary>
/// A scripted NBD server for one connection, for the failures real servers will not produce on demand
/// (garbage replies, GO refused). The script runs on a background thread with the accepted socket.
/// </summary>
internal sealed class ScriptedNbdServer : IDisposable
{
    private readonly Socket _listener;
    private readonly Thread _thread;
    private Exception? _error;

    public ScriptedNbdServer(string path, Action<Socket> script)
    {
        _listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        _listener.Bind(new UnixDomainSocketEndPoint(path));
        _listener.Listen(4);
        Uri = NbdUri.ForUnix(path);
        _thread = new Thread(() =>
        {
            try
            {
                using var s = _listener.Accept();
                s.ReceiveTimeout = 60_000;
                script(s);
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException) { }
            catch (Exception e) { _error = e; }
        }) { IsBackground = true };
        _thread.Start();
    }

    public NbdUri Uri { get; }

    public void Dispose()
    {
        _listener.Dispose();
        _thread.Join(TimeSpan.FromSeconds(60));
        if (_error != null) throw new AssertionException("scripted server failed: " + _error);
    }

    // ---- server-side wire helpers (layouts from proto.md "Handshake" and "Transmission") ----

    public static void Greet(Socket s, NbdHandshakeFlags flags)
    {
        var b = new byte[18];
        BinaryPrimitives.WriteUInt64BigEndian(b, NbdMagic.NbdMagicValue);
        BinaryPrimitives.WriteUInt64BigEndian(b.AsSpan(8), NbdMagic.IHaveOpt);
        BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(16), (ushort)flags);
        s.Send(b);
        Read(s, 4); // client flags
    }

    public static (uint Option, byte[] Data) ReadOption(Socket s)
    {
        var h = Read(s, 16);
        Assert.That(BinaryPrimitives.ReadUInt64BigEndian(h), Is.EqualTo(NbdMagic.IHaveOpt));
        return (BinaryPrimitives.ReadUInt32BigEndian(h.AsSpan(8)), Read(s, (int)BinaryPrimitives.ReadUInt32BigEndian(h.AsSpan(12))));
    }

    public static void OptionReply(Socket s, uint option, NbdOptionReplyType type, ReadOnlySpan<byte> data)
    {
        var b = new byte[20 + data.Length];
        BinaryPrimitives.WriteUInt64BigEndian(b, NbdMagic.OptionReply);
        BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(8), option);
        BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(12), (uint)type);
        BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(16), (uint)data.Length);
        data.CopyTo(b.AsSpan(20));
        s.Send(b);
    }

    /// <summary>Answers NBD_OPT_GO with NBD_INFO_EXPORT and ACK.</summary>
    public static void AnswerGo(Socket s, ulong size)
    {
        var (option, _) = ReadOption(s);
        Assert.That(option, Is.EqualTo((uint)NbdOption.Go));
        var info = new byte[12];
        BinaryPrimitives.WriteUInt16BigEndian(info, (ushort)NbdInfoType.Export);
        BinaryPrimitives.WriteUInt64BigEndian(info.AsSpan(2), size);
        BinaryPrimitives.WriteUInt16BigEndian(info.AsSpan(10), (ushort)(NbdTransmissionFlags.HasFlags | NbdTransmissionFlags.SendFlush));
        OptionReply(s, option, NbdOptionReplyType.Info, info);
        OptionReply(s, option, NbdOptionReplyType.Ack, default);
    }

    public static NbdRequestHeader ReadRequest(Socket s)
    {
        Assert.That(NbdRequestHeader.TryRead(Read(s, 28), out var h, out var error), Is.True, error);
        if (h.Command == NbdCommand.Write) Read(s, (int)h.Length);
        return h;
    }

    public static void Reply(Socket s, uint magic, uint error, ulong cookie, byte[]? data = null)
    {
        var b = new byte[16 + (data?.Length ?? 0)];
        BinaryPrimitives.WriteUInt32BigEndian(b, magic);
        BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(4), error);
        BinaryPrimitives.WriteUInt64BigEndian(b.AsSpan(8), cookie);
        data?.CopyTo(b, 16);
        s.Send(b);
    }

    /// <summary>
    /// Keeps the connection open until the client closes it (at most 60 s), reading and dropping
    /// whatever it still sends: the client reads every reply sent before it can see the end, however
    /// slowly it is scheduled (a fixed pause here would be a race the client must win).
    /// </summary>
    public static void HoldOpen(Socket s)
    {
        var buf = new byte[4096];
        s.ReceiveTimeout = 60_000;
        try { while (s.Receive(buf) > 0) { } }
        catch (SocketException) { /* reset by the client, or 60 s passed */ }
    }

    public static byte[] Read(Socket s, int n)
    {
        var b = new byte[n];
        int done = 0;
        while (done < n)
        {
            int r = s.Receive(b, done, n - done, SocketFlags.None);
            if (r == 0) throw new SocketException((int)SocketError.ConnectionReset);
            done += r;
        }
        return b;
    }
}

/// <summary>How <see cref="NbdClient"/> meets failing servers, refused exports and old handshakes.</summary>
[TestFixture, NonParallelizable]
public class NbdClientFailureTests
{
    private string _dir = null!;
    private readonly List<IDisposable> _cleanup = [];

    [SetUp]
    public void SetUp() => _dir = NbdTestUtil.TempDir();

    [TearDown]
    public void TearDown()
    {
        for (int i = _cleanup.Count - 1; i >= 0; i--) _cleanup[i].Dispose();
        _cleanup.Clear();
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }

    private T Track<T>(T d) where T : IDisposable { _cleanup.Add(d); return d; }

    private BackgroundPeer Nbdkit(NbdUri uri, params string[] args)
    {
        var nbdkit = Peers.Require("nbdkit");
        return Track(new BackgroundPeer(nbdkit, ["-f", "--exit-with-parent", "-U", uri.SocketPath!, .. args]).WaitReady(uri));
    }

    /// <summary>Drives a client until nothing is in flight or it broke.</summary>
    private static void Drive(NbdClient client, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(60));
        while (client.InFlight > 0)
        {
            if (DateTime.UtcNow > deadline) Assert.Fail($"{client.InFlight} requests still pending");
            client.Flush();
            if (client.Socket is { } s && s.Poll(10_000, SelectMode.SelectRead)) client.OnReadable();
        }
    }

    [Test]
    public void ErrorFilter_SomeRequestsFail_OthersSucceedAndTheClientSurvives()
    {
        var uri = NbdUri.ForUnix(Path.Combine(_dir, "e.sock"));
        Nbdkit(uri, "--filter=error", "memory", "4M", "error=EIO", "error-rate=40%");
        var sink = new RecordingSink();
        using var client = NbdClient.Connect(uri, sink);
        var buffers = new byte[300][];
        for (int i = 0; i < buffers.Length; i++)
        {
            buffers[i] = new byte[4096];
            client.Submit(i % 2 == 0 ? NbdCommand.Read : NbdCommand.Write, (ulong)(i * 4096 % (4 << 20)), 4096, buffers[i], (ulong)i);
        }
        Drive(client);
        Assert.That(sink.Results, Has.Count.EqualTo(buffers.Length));
        int failed = sink.Results.Values.Count(e => e == NbdError.EIO);
        int ok = sink.Results.Values.Count(e => e == 0);
        Assert.That(failed + ok, Is.EqualTo(buffers.Length), "every request either succeeded or failed with the injected EIO");
        Assert.That(failed, Is.InRange(40, 260), "about 40% fail");
        Assert.That(ok, Is.InRange(40, 260));
        Assert.That(client.IsBroken, Is.False);
    }

    [Test]
    public void ServerKilled_PendingRequestsFailWithConnectionLost_ReconnectWorksAfterRestart()
    {
        var uri = NbdUri.ForUnix(Path.Combine(_dir, "k.sock"));
        // The delay filter holds every read for 10 s so requests are surely pending when the server dies.
        var peer = Nbdkit(uri, "--filter=delay", "memory", "1M", "rdelay=10");
        var sink = new RecordingSink();
        using var client = NbdClient.Connect(uri, sink);
        for (int i = 0; i < 8; i++) client.Submit(NbdCommand.Read, (ulong)(i * 512), 512, new byte[512], (ulong)i);
        Assert.That(client.Flush(), Is.True);
        Thread.Sleep(100);
        peer.Kill();
        Drive(client);
        Assert.That(sink.Results, Has.Count.EqualTo(8));
        Assert.That(sink.Results.Values, Is.All.EqualTo(NbdError.ConnectionLost));
        Assert.That(client.IsBroken, Is.True);
        Assert.That(client.BrokenReason, Does.Contain("closed").Or.Contain("failed"));
        var ex = Assert.Throws<InvalidOperationException>(() => client.Submit(NbdCommand.Read, 0, 512, new byte[512], 99));
        Assert.That(ex!.Message, Does.Contain("Reconnect"));

        Assert.Throws<SocketException>(() => client.Reconnect(), "nothing listens while the server is down");
        File.Delete(uri.SocketPath!);
        Nbdkit(uri, "memory", "1M");
        client.Reconnect();
        Assert.That(client.IsBroken, Is.False);
        var data = NbdTestUtil.RandomBytes(4096, 5);
        var back = new byte[4096];
        client.Submit(NbdCommand.Write, 8192, 4096, data, 100);
        Drive(client);
        client.Submit(NbdCommand.Read, 8192, 4096, back, 101);
        Drive(client);
        Assert.That(sink.Results[100], Is.EqualTo(0));
        Assert.That(sink.Results[101], Is.EqualTo(0));
        Assert.That(back, Is.EqualTo(data));
    }

    private NbdClient ConnectScripted(Action<Socket> transmission, RecordingSink sink, ulong size = 1 << 20)
    {
        var server = Track(new ScriptedNbdServer(Path.Combine(_dir, "f.sock"), s =>
        {
            ScriptedNbdServer.Greet(s, NbdHandshakeFlags.FixedNewstyle | NbdHandshakeFlags.NoZeroes);
            ScriptedNbdServer.AnswerGo(s, size);
            transmission(s);
        }));
        return Track(NbdClient.Connect(server.Uri, sink));
    }

    [TestCase(0xdeadbeefu, "magic")]
    [TestCase(NbdMagic.StructuredReply, "structured")]
    public void GarbageReplyMagic_FailsEveryPendingRequest(uint magic, string reasonWord)
    {
        var sink = new RecordingSink();
        var client = ConnectScripted(s =>
        {
            var h = ScriptedNbdServer.ReadRequest(s);
            ScriptedNbdServer.Reply(s, magic, 0, h.Cookie);
            ScriptedNbdServer.HoldOpen(s);
        }, sink);
        for (int i = 0; i < 4; i++) client.Submit(NbdCommand.Read, 0, 512, new byte[512], (ulong)i);
        Drive(client);
        Assert.That(sink.Results.Values, Is.All.EqualTo(NbdError.ConnectionLost));
        Assert.That(sink.Results, Has.Count.EqualTo(4));
        Assert.That(client.IsBroken, Is.True);
        Assert.That(client.BrokenReason, Does.Contain(reasonWord));
    }

    [Test]
    public void ReplyWithUnknownCookie_FailsEveryPendingRequest()
    {
        var sink = new RecordingSink();
        var client = ConnectScripted(s =>
        {
            var h = ScriptedNbdServer.ReadRequest(s);
            ScriptedNbdServer.Reply(s, NbdMagic.SimpleReply, 0, h.Cookie ^ 0x5555_0000_0000UL);
            ScriptedNbdServer.HoldOpen(s);
        }, sink);
        client.Submit(NbdCommand.Write, 0, 512, new byte[512], 1);
        client.Submit(NbdCommand.Read, 0, 512, new byte[512], 2);
        Drive(client);
        Assert.That(sink.Results.Values, Is.All.EqualTo(NbdError.ConnectionLost));
        Assert.That(client.BrokenReason, Does.Contain("unknown cookie"));
    }

    [Test]
    public void TruncatedReadReply_ServerCloses_FailsPendingAsTruncated()
    {
        var sink = new RecordingSink();
        var client = ConnectScripted(s =>
        {
            var a = ScriptedNbdServer.ReadRequest(s);
            var b = ScriptedNbdServer.ReadRequest(s);
            ScriptedNbdServer.Reply(s, NbdMagic.SimpleReply, 0, b.Cookie, Enumerable.Repeat((byte)7, 4096).ToArray());
            ScriptedNbdServer.Reply(s, NbdMagic.SimpleReply, 0, a.Cookie, new byte[100]); // 100 of 4096 payload bytes
            s.Shutdown(SocketShutdown.Both);
        }, sink);
        var bufB = new byte[4096];
        client.Submit(NbdCommand.Read, 0, 4096, new byte[4096], 1);
        client.Submit(NbdCommand.Read, 4096, 4096, bufB, 2);
        Drive(client);
        Assert.That(sink.Results[2], Is.EqualTo(0), "the complete reply (out of order) is delivered");
        Assert.That(bufB, Is.All.EqualTo(7));
        Assert.That(sink.Results[1], Is.EqualTo(NbdError.ConnectionLost));
        Assert.That(client.BrokenReason, Does.Contain("truncated"));
    }

    [Test]
    public void ServerErrorReply_CompletesThatRequestOnly()
    {
        var sink = new RecordingSink();
        var client = ConnectScripted(s =>
        {
            var a = ScriptedNbdServer.ReadRequest(s);
            var b = ScriptedNbdServer.ReadRequest(s);
            ScriptedNbdServer.Reply(s, NbdMagic.SimpleReply, NbdError.ENOSPC, b.Cookie);
            ScriptedNbdServer.Reply(s, NbdMagic.SimpleReply, NbdError.EIO, a.Cookie); // error READ reply: no payload
            var c = ScriptedNbdServer.ReadRequest(s);
            ScriptedNbdServer.Reply(s, NbdMagic.SimpleReply, 0, c.Cookie, new byte[512]);
            ScriptedNbdServer.HoldOpen(s);
        }, sink);
        client.Submit(NbdCommand.Read, 0, 512, new byte[512], 1);
        client.Submit(NbdCommand.Write, 0, 512, new byte[512], 2);
        Drive(client);
        client.Submit(NbdCommand.Read, 0, 512, new byte[512], 3);
        Drive(client);
        Assert.That(sink.Results[1], Is.EqualTo(NbdError.EIO));
        Assert.That(sink.Results[2], Is.EqualTo(NbdError.ENOSPC));
        Assert.That(sink.Results[3], Is.EqualTo(0));
        Assert.That(sink.Order, Is.EqualTo(new ulong[] { 2, 1, 3 }));
        Assert.That(client.IsBroken, Is.False);
    }

    [Test]
    public void GoAnsweredErrUnsup_FallsBackToExportNameWithZeroPadding()
    {
        var sink = new RecordingSink();
        var server = Track(new ScriptedNbdServer(Path.Combine(_dir, "o.sock"), s =>
        {
            ScriptedNbdServer.Greet(s, NbdHandshakeFlags.FixedNewstyle); // no NO_ZEROES: 124 zero bytes follow
            var (go, _) = ScriptedNbdServer.ReadOption(s);
            Assert.That(go, Is.EqualTo((uint)NbdOption.Go));
            ScriptedNbdServer.OptionReply(s, go, NbdOptionReplyType.ErrUnsup, default);
            var (opt, name) = ScriptedNbdServer.ReadOption(s);
            Assert.That(opt, Is.EqualTo((uint)NbdOption.ExportName));
            Assert.That(Encoding.UTF8.GetString(name), Is.EqualTo("old"));
            var answer = new byte[10 + 124];
            BinaryPrimitives.WriteUInt64BigEndian(answer, 3 << 20);
            BinaryPrimitives.WriteUInt16BigEndian(answer.AsSpan(8), (ushort)(NbdTransmissionFlags.HasFlags | NbdTransmissionFlags.ReadOnly));
            s.Send(answer);
            var r = ScriptedNbdServer.ReadRequest(s);
            ScriptedNbdServer.Reply(s, NbdMagic.SimpleReply, 0, r.Cookie, Enumerable.Repeat((byte)0xab, 512).ToArray());
            ScriptedNbdServer.HoldOpen(s);
        }));
        var client = Track(NbdClient.Connect(NbdUri.ForUnix(server.Uri.SocketPath!, "old"), sink));
        Assert.That(client.ExportInfo.UsedGo, Is.False);
        Assert.That(client.ExportSize, Is.EqualTo(3UL << 20));
        Assert.That(client.TransmissionFlags, Is.EqualTo(NbdTransmissionFlags.HasFlags | NbdTransmissionFlags.ReadOnly));
        var buf = new byte[512];
        client.Submit(NbdCommand.Read, 0, 512, buf, 1);
        Drive(client);
        Assert.That(sink.Results[1], Is.EqualTo(0));
        Assert.That(buf, Is.All.EqualTo(0xab), "the 124 pad bytes were consumed, so the reply lined up");
    }

    [Test]
    public void GoRefusedWithPolicyMessage_ThrowsNamingExportErrorAndMessage()
    {
        var server = Track(new ScriptedNbdServer(Path.Combine(_dir, "p.sock"), s =>
        {
            ScriptedNbdServer.Greet(s, NbdHandshakeFlags.FixedNewstyle | NbdHandshakeFlags.NoZeroes);
            var (go, _) = ScriptedNbdServer.ReadOption(s);
            ScriptedNbdServer.OptionReply(s, go, NbdOptionReplyType.ErrPolicy, Encoding.UTF8.GetBytes("go away"));
            ScriptedNbdServer.HoldOpen(s);
        }));
        var ex = Assert.Throws<NbdProtocolException>(() => NbdClient.Connect(NbdUri.ForUnix(server.Uri.SocketPath!, "secret"), new RecordingSink()));
        Assert.That(ex!.Message, Does.Contain("'secret'").And.Contain("NBD_REP_ERR_POLICY").And.Contain("go away"));
        Assert.That(ex.ServerReply, Is.EqualTo(NbdOptionReplyType.ErrPolicy));
    }

    [Test]
    public void UnknownExport_QemuNbd_ThrowsNamingExportAndErrUnknown()
    {
        var qemuNbd = Peers.Require("qemu-nbd");
        var file = Path.Combine(_dir, "d.img");
        File.WriteAllBytes(file, new byte[65536]);
        var good = NbdUri.Parse($"nbd+unix:///disk?socket={_dir}/q.sock");
        Track(new BackgroundPeer(qemuNbd, ["-k", good.SocketPath!, "-f", "raw", "-t", "-x", "disk", file]).WaitReady(good));
        var ex = Assert.Throws<NbdProtocolException>(() => NbdClient.Connect(NbdUri.ForUnix(good.SocketPath!, "nope"), new RecordingSink()));
        Assert.That(ex!.Message, Does.Contain("'nope'").And.Contain("NBD_REP_ERR_UNKNOWN"));
        using var ok = NbdClient.Connect(good, new RecordingSink());
        Assert.That(ok.ExportSize, Is.EqualTo(65536UL));
    }

    [Test]
    public void PlainNewstyleServer_NbdkitMaskHandshake_UsesExportNameAndServes()
    {
        var uri = NbdUri.ForUnix(Path.Combine(_dir, "m.sock"));
        // --mask-handshake=0 hides NBD_FLAG_FIXED_NEWSTYLE (and NO_ZEROES): only NBD_OPT_EXPORT_NAME is possible.
        Nbdkit(uri, "--mask-handshake=0", "memory", "1M");
        using var c = new NbdBlockingClient(uri);
        Assert.That(c.Client.ExportInfo.UsedGo, Is.False);
        Assert.That(c.Client.ExportSize, Is.EqualTo(1UL << 20));
        var data = NbdTestUtil.RandomBytes(65536, 3);
        var back = new byte[65536];
        Assert.That(c.Write(4096, data), Is.EqualTo(0));
        Assert.That(c.Read(4096, back), Is.EqualTo(0));
        Assert.That(back, Is.EqualTo(data));
    }

    [Test]
    public void Submit_FromInsideACompletion_ChainsWithoutRecursionProblems()
    {
        var uri = NbdUri.ForUnix(Path.Combine(_dir, "r.sock"));
        Nbdkit(uri, "memory", "1M");
        var sink = new RecordingSink();
        using var client = NbdClient.Connect(uri, sink);
        var buf = new byte[512];
        sink.Then = (token, error) =>
        {
            if (token < 200) client.Submit(NbdCommand.Write, token * 512, 512, buf, token + 1);
        };
        client.Submit(NbdCommand.Write, 0, 512, buf, 0);
        Drive(client);
        Assert.That(sink.Results, Has.Count.EqualTo(201));
        Assert.That(sink.Results.Values, Is.All.EqualTo(0));
    }

    [Test]
    public void Submit_BadArguments_ThrowClearErrors()
    {
        var uri = NbdUri.ForUnix(Path.Combine(_dir, "a.sock"));
        Nbdkit(uri, "memory", "1M");
        using var client = NbdClient.Connect(uri, new RecordingSink());
        var ex = Assert.Throws<ArgumentException>(() => client.Submit(NbdCommand.Read, 0, 4096, new byte[100], 1));
        Assert.That(ex!.Message, Does.Contain("shorter"));
        ex = Assert.Throws<ArgumentException>(() => client.Submit(NbdCommand.Read, 0, 64u << 20, new byte[1], 1));
        Assert.That(ex!.Message, Does.Contain("maximum payload"));
        Assert.Throws<ArgumentException>(() => client.Submit((NbdCommand)42, 0, 0, default, 1));
        Assert.That(client.InFlight, Is.EqualTo(0));
    }
}
