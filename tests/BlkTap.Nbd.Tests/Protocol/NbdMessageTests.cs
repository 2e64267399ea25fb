using BlkTap.Testing.Logging;
using System.Buffers.Binary;
using System.Net.Sockets;
using BlkTap.Nbd;
using BlkTap.Testing;
using NUnit.Framework;
using BlkTap.Testing.Generators;

namespace BlkTap.Nbd.Tests.Protocol;

/// <summary>Generated NBD bytes: the header decoder's verdict, and a real NbdServer's answers to option haggling scripts.</summary>
public class NbdMessageTests
{
    [FsCheck.NUnit.Property(Arbitrary = [typeof(BlkTapArbitraries)], MaxTest = 500)]
    public void NbdRequestHeader_GeneratedBytes_DecodesExactlyOrNamesTheProblem(NbdHeaderCase c)
    {
        bool ok = NbdRequestHeader.TryRead(c.Bytes, out var header, out var error);
        if (c.Header is { } expected)
        {
            Assert.That(ok, Is.True, error);
            Assert.That(header, Is.EqualTo(expected));
        }
        else
        {
            Assert.That(ok, Is.False);
            Assert.That(error, Does.Contain(c.ExpectedError));
        }
    }

    [FsCheck.NUnit.Property(Arbitrary = [typeof(BlkTapArbitraries)], MaxTest = 60)]
    public void NbdServer_GeneratedOptionHaggling_AnswersEachOptionAsTheProtocolSays(NbdHandshakeScript script)
    {
        var dir = Directory.CreateTempSubdirectory("blktap-nbdgen-");
        var log = new List<string>();
        try
        {
            var path = Path.Combine(dir.FullName, "s");
            var server = new NbdServer(new NbdSingleExportProvider(new MemoryNbdExportBackend(1 << 16), NbdGenerators.ExportName),
                new NbdServerOptions { Logger = new LineLogger(m => { lock (log) log.Add(m); }) });
            server.ListenUnix(path);
            try
            {
                using var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                s.Connect(new UnixDomainSocketEndPoint(path));
                s.ReceiveTimeout = 10_000;
                var greeting = ReadExact(s, 18);
                Assert.That(BinaryPrimitives.ReadUInt64BigEndian(greeting), Is.EqualTo(NbdMagic.NbdMagicValue));
                s.Send(script.ClientBytes);
                bool transmission = script.EntersTransmission;
                if (!transmission) s.Shutdown(SocketShutdown.Send);
                foreach (var expect in script.Options)
                {
                    foreach (var type in expect.Replies)
                    {
                        var hdr = ReadExact(s, NbdMagic.OptionReplyHeaderSize);
                        Assert.That(hdr, Is.Not.Null, $"{script}: connection closed before the {type} reply to option {expect.Option}");
                        Assert.That(BinaryPrimitives.ReadUInt64BigEndian(hdr), Is.EqualTo(NbdMagic.OptionReply));
                        Assert.That(BinaryPrimitives.ReadUInt32BigEndian(hdr.AsSpan(8)), Is.EqualTo(expect.Option));
                        Assert.That((NbdOptionReplyType)BinaryPrimitives.ReadUInt32BigEndian(hdr.AsSpan(12)), Is.EqualTo(type), script.ToString());
                        ReadExact(s, (int)BinaryPrimitives.ReadUInt32BigEndian(hdr.AsSpan(16)));
                    }
                }
                if (transmission)
                {
                    // EXPORT_NAME answers size + flags (+ zeroes unless NO_ZEROES): skip whatever precedes the reply by asking for a read.
                    var req = new byte[NbdMagic.RequestHeaderSize];
                    new NbdRequestHeader(NbdCommandFlags.None, NbdCommand.Read, 0xC0FFEE, 512, 512).Write(req);
                    s.Send(req);
                    bool viaGo = script.Options.Count > 0 && script.Options[^1].Option == (uint)NbdOption.Go && script.Options[^1].Replies[^1] == NbdOptionReplyType.Ack;
                    bool noZeroes = (BinaryPrimitives.ReadUInt32BigEndian(script.ClientBytes) & (uint)NbdClientFlags.NoZeroes) != 0;
                    int preamble = viaGo ? 0 : 10 + (noZeroes ? 0 : NbdMagic.ExportNameZeroPad);
                    var rest = ReadToEnd(s, preamble + NbdMagic.SimpleReplyHeaderSize + 512);
                    int at = preamble;
                    Assert.That(rest.Length, Is.EqualTo(preamble + NbdMagic.SimpleReplyHeaderSize + 512), $"{script}: no complete read reply in transmission");
                    Assert.That(NbdSimpleReply.TryRead(rest.AsSpan(at), out var reply, out var err), Is.True, err);
                    Assert.That(reply, Is.EqualTo(new NbdSimpleReply(0, 0xC0FFEE)));
                }
                else
                {
                    // Nothing more: the server closes the connection (it must not hang or enter transmission).
                    var extra = ReadToEnd(s, 1 << 16);
                    Assert.That(extra, Is.Empty, $"{script}: unexpected bytes after the last expected reply");
                }
            }
            finally { server.DisposeAsync().AsTask().GetAwaiter().GetResult(); }
            lock (log) Assert.That(log.Where(l => l.Contains("unexpected")), Is.Empty, "an unexpected exception inside the server");
        }
        finally { dir.Delete(true); }
    }

    private static byte[] ReadExact(Socket s, int n)
    {
        var b = new byte[n];
        int got = 0;
        while (got < n)
        {
            int r = s.Receive(b, got, n - got, SocketFlags.None);
            if (r == 0) return null!;
            got += r;
        }
        return b;
    }

    private static byte[] ReadToEnd(Socket s, int want)
    {
        var ms = new MemoryStream();
        var b = new byte[4096];
        while (ms.Length < want)
        {
            int r;
            try { r = s.Receive(b); } catch (SocketException) { break; }
            if (r == 0) break;
            ms.Write(b, 0, r);
        }
        return ms.ToArray();
    }
}
