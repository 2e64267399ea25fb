using System.Buffers.Binary;
using System.Net.Sockets;
using System.Text;
using BlkTap.Nbd;
using FsCheck;
using FsCheck.Fluent;
using NUnit.Framework;
using static BlkTap.Nbd.Tests.Server.RawNbd;
using BlkTap.Testing.Nbd;
using BlkTap.Testing.Rigs;

namespace BlkTap.Nbd.Tests.Server;

/// <summary>The server's option haggling, driven byte by byte over a raw socket (well-formed, malformed, random).</summary>
[TestFixture]
[NonParallelizable]
public class NbdServerHandshakeTests
{
    private string _dir = null!;
    private NbdServer _server = null!;
    private string _sock = null!;
    private MemoryNbdExportBackend _backend = null!;

    [OneTimeSetUp]
    public void Start()
    {
        _dir = NbdTestUtil.TempDir();
        _backend = new MemoryNbdExportBackend(2 << 20);
        _server = new NbdServer(new NbdSingleExportProvider(_backend, "disk"), new NbdServerOptions { HandshakeTimeout = TimeSpan.FromSeconds(60) });
        _sock = Path.Combine(_dir, "h.sock");
        _server.ListenUnix(_sock);
    }

    [OneTimeTearDown]
    public async Task Stop()
    {
        await _server.DisposeAsync();
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }

    /// <summary>Proves the server still serves: GO on "disk", then a read.</summary>
    private void AssertServerHealthy()
    {
        using var s = Negotiating(_sock);
        SendOption(s, (uint)NbdOption.Go, GoData("disk"));
        NbdOptionReplyType t;
        do { (t, _) = ReadOptionReply(s, (uint)NbdOption.Go); } while (t == NbdOptionReplyType.Info);
        Assert.That(t, Is.EqualTo(NbdOptionReplyType.Ack));
        Assert.That(Request(s, NbdCommand.Read, 77, 0, 512, readInto: new byte[512]).Error, Is.EqualTo(0u));
    }

    [Test]
    public void Greeting_Always_NbdMagicIHaveOptFixedNewstyleNoZeroes()
    {
        using var s = RawConnect(_sock);
        var g = new byte[18];
        ReadExact(s, g);
        Assert.That(Encoding.ASCII.GetString(g, 0, 8), Is.EqualTo("NBDMAGIC"));
        Assert.That(Encoding.ASCII.GetString(g, 8, 8), Is.EqualTo("IHAVEOPT"));
        Assert.That(BinaryPrimitives.ReadUInt16BigEndian(g.AsSpan(16)), Is.EqualTo((ushort)(NbdHandshakeFlags.FixedNewstyle | NbdHandshakeFlags.NoZeroes)));
    }

    [Test]
    public void Info_KnownExport_InfoExportThenAckAndNegotiationContinues()
    {
        using var s = Negotiating(_sock);
        SendOption(s, (uint)NbdOption.Info, GoData("disk", NbdInfoType.Name));
        var infos = new Dictionary<NbdInfoType, byte[]>();
        while (true)
        {
            var (t, d) = ReadOptionReply(s, (uint)NbdOption.Info);
            if (t == NbdOptionReplyType.Ack) break;
            Assert.That(t, Is.EqualTo(NbdOptionReplyType.Info));
            infos[(NbdInfoType)BinaryPrimitives.ReadUInt16BigEndian(d)] = d;
        }
        var exp = infos[NbdInfoType.Export];
        Assert.That(exp, Has.Length.EqualTo(12));
        Assert.That(BinaryPrimitives.ReadUInt64BigEndian(exp.AsSpan(2)), Is.EqualTo(2UL << 20));
        var flags = (NbdTransmissionFlags)BinaryPrimitives.ReadUInt16BigEndian(exp.AsSpan(10));
        Assert.That(flags, Is.EqualTo(NbdTransmissionFlags.HasFlags | NbdTransmissionFlags.SendFlush | NbdTransmissionFlags.SendFua
            | NbdTransmissionFlags.SendTrim | NbdTransmissionFlags.SendWriteZeroes | NbdTransmissionFlags.CanMultiConn));
        Assert.That(Encoding.UTF8.GetString(infos[NbdInfoType.Name], 2, infos[NbdInfoType.Name].Length - 2), Is.EqualTo("disk"));
        Assert.That(infos[NbdInfoType.BlockSize], Has.Length.EqualTo(14));

        SendOption(s, (uint)NbdOption.Abort, default);
        Assert.That(ReadOptionReply(s, (uint)NbdOption.Abort).Type, Is.EqualTo(NbdOptionReplyType.Ack));
        Assert.That(ClosedByServer(s), Is.True);
    }

    [Test]
    public void Go_UnknownExport_ErrUnknownNamingTheExport()
    {
        using var s = Negotiating(_sock);
        SendOption(s, (uint)NbdOption.Go, GoData("nosuch"));
        var (t, d) = ReadOptionReply(s, (uint)NbdOption.Go);
        Assert.That(t, Is.EqualTo(NbdOptionReplyType.ErrUnknown));
        Assert.That(Encoding.UTF8.GetString(d), Does.Contain("nosuch"));
        SendOption(s, (uint)NbdOption.Go, GoData("disk"));
        do { (t, _) = ReadOptionReply(s, (uint)NbdOption.Go); } while (t == NbdOptionReplyType.Info);
        Assert.That(t, Is.EqualTo(NbdOptionReplyType.Ack), "negotiation continues after an error");
    }

    [TestCase(NbdOption.StructuredReply)]
    [TestCase(NbdOption.StartTls)]
    [TestCase(NbdOption.ListMetaContext)]
    [TestCase(NbdOption.ExtendedHeaders)]
    public void UnimplementedOption_Sent_ErrUnsup(NbdOption option)
    {
        using var s = Negotiating(_sock);
        SendOption(s, (uint)option, default);
        Assert.That(ReadOptionReply(s, (uint)option).Type, Is.EqualTo(NbdOptionReplyType.ErrUnsup));
    }

    [Test]
    public void MalformedOptions_ListWithDataOrGoWithBadLengths_ErrInvalid()
    {
        using var s = Negotiating(_sock);
        SendOption(s, (uint)NbdOption.List, [1, 2, 3]);
        Assert.That(ReadOptionReply(s, (uint)NbdOption.List).Type, Is.EqualTo(NbdOptionReplyType.ErrInvalid));
        var go = GoData("disk", NbdInfoType.Name);
        BinaryPrimitives.WriteUInt32BigEndian(go, 4000); // name length beyond the data
        SendOption(s, (uint)NbdOption.Go, go);
        Assert.That(ReadOptionReply(s, (uint)NbdOption.Go).Type, Is.EqualTo(NbdOptionReplyType.ErrInvalid));
        SendOption(s, (uint)NbdOption.Info, GoData("disk", NbdInfoType.Name)[..^1]); // odd request count bytes
        Assert.That(ReadOptionReply(s, (uint)NbdOption.Info).Type, Is.EqualTo(NbdOptionReplyType.ErrInvalid));
        SendOption(s, (uint)NbdOption.List, default);
        var (t, d) = ReadOptionReply(s, (uint)NbdOption.List);
        Assert.That(t, Is.EqualTo(NbdOptionReplyType.Server));
        Assert.That(Encoding.UTF8.GetString(d, 4, d.Length - 4), Is.EqualTo("disk"));
        Assert.That(ReadOptionReply(s, (uint)NbdOption.List).Type, Is.EqualTo(NbdOptionReplyType.Ack));
    }

    [Test]
    public void ExportName_OldNewstyleClientWithoutNoZeroes_SizeFlagsAnd124Zeroes()
    {
        using var s = Negotiating(_sock, clientFlags: 0);
        SendOption(s, (uint)NbdOption.ExportName, Encoding.UTF8.GetBytes("disk"));
        var a = new byte[10 + 124];
        ReadExact(s, a);
        Assert.That(BinaryPrimitives.ReadUInt64BigEndian(a), Is.EqualTo(2UL << 20));
        Assert.That(BinaryPrimitives.ReadUInt16BigEndian(a.AsSpan(8)) & 1, Is.EqualTo(1));
        Assert.That(a.AsSpan(10).IndexOfAnyExcept((byte)0), Is.EqualTo(-1));
        Assert.That(Request(s, NbdCommand.Flush, 1, 0, 0).Error, Is.EqualTo(0u));
    }

    [Test]
    public void NonFixedClient_SendsList_Disconnected()
    {
        using var s = Negotiating(_sock, clientFlags: 0);
        SendOption(s, (uint)NbdOption.List, default);
        Assert.That(ClosedByServer(s), Is.True);
        AssertServerHealthy();
    }

    [Test]
    public void ExportName_UnknownExport_Disconnected()
    {
        using var s = Negotiating(_sock);
        SendOption(s, (uint)NbdOption.ExportName, Encoding.UTF8.GetBytes("nosuch"));
        Assert.That(ClosedByServer(s), Is.True);
        AssertServerHealthy();
    }

    [Test]
    public void HugeOptionLength_Sent_Disconnected()
    {
        using var s = Negotiating(_sock);
        var h = new byte[16];
        BinaryPrimitives.WriteUInt64BigEndian(h, NbdMagic.IHaveOpt);
        BinaryPrimitives.WriteUInt32BigEndian(h.AsSpan(8), (uint)NbdOption.Go);
        BinaryPrimitives.WriteUInt32BigEndian(h.AsSpan(12), 0xffff_fff0);
        s.Send(h);
        Assert.That(ClosedByServer(s), Is.True);
        AssertServerHealthy();
    }

    /// <summary>Any option code the server does not implement gets ERR_UNSUP (with its data skipped) and haggling goes on.</summary>
    [FsCheck.NUnit.Property(MaxTest = 60)]
    public Property UnknownOption_AnyCodeAndData_ErrUnsupThenAbortAcked()
    {
        var known = new uint[] { 1, 2, 3, 6, 7 };
        var gen = from code in ArbMap.Default.GeneratorFor<uint>().Where(c => Array.IndexOf(known, c) < 0)
                  from data in Gen.ArrayOf(ArbMap.Default.GeneratorFor<byte>())
                  select (code, data);
        return Prop.ForAll(gen.ToArbitrary(), t =>
        {
            using var s = Negotiating(_sock);
            SendOption(s, t.code, t.data);
            var (type, _) = ReadOptionReply(s, t.code);
            SendOption(s, (uint)NbdOption.Abort, default);
            var (abortType, _) = ReadOptionReply(s, (uint)NbdOption.Abort);
            return type == NbdOptionReplyType.ErrUnsup && abortType == NbdOptionReplyType.Ack && ClosedByServer(s);
        });
    }

    /// <summary>Random bytes instead of a handshake end in a closed connection, never a hang or a dead server.</summary>
    [FsCheck.NUnit.Property(MaxTest = 40)]
    public bool RandomBytes_AfterGreeting_ConnectionClosedAndServerHealthy(byte[] junk)
    {
        using (var s = RawConnect(_sock))
        {
            var g = new byte[18];
            ReadExact(s, g);
            if (junk.Length > 0) s.Send(junk);
            s.Shutdown(SocketShutdown.Send);
            if (!ClosedByServer(s)) return false;
        }
        AssertServerHealthy();
        return true;
    }

    /// <summary>Random request headers after a good handshake: answered (EINVAL etc.) or disconnected; the export is untouched by anything not acknowledged.</summary>
    [FsCheck.NUnit.Property(MaxTest = 40)]
    public bool RandomRequestBytes_InTransmission_ServerSurvives(byte[] junk)
    {
        using (var s = RawTransmission(_sock, out _, "disk"))
        {
            if (junk.Length > 0) s.Send(junk);
            s.Shutdown(SocketShutdown.Send);
            if (!ClosedByServer(s)) return false;
        }
        AssertServerHealthy();
        return true;
    }
}
