using System.Buffers.Binary;
using System.Net.Sockets;
using BlkTap.Nbd;
using NUnit.Framework;

namespace BlkTap.Nbd.Tests.Server;

/// <summary>Hand-made NBD wire messages over a raw Unix socket, to drive the server where no peer misbehaves on purpose.</summary>
internal static class RawNbd
{
    public static Socket RawConnect(string sock)
    {
        var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified) { ReceiveTimeout = 60_000 };
        s.Connect(new UnixDomainSocketEndPoint(sock));
        return s;
    }

    /// <summary>Reads until EOF; returns true when the server closed the connection.</summary>
    public static bool ClosedByServer(Socket s)
    {
        var buf = new byte[4096];
        try { while (s.Receive(buf) > 0) { } return true; }
        catch (SocketException e) { return e.SocketErrorCode == SocketError.ConnectionReset; }
    }

    /// <summary>Does the raw fixed-newstyle handshake with NBD_OPT_EXPORT_NAME and NO_ZEROES.</summary>
    public static Socket RawTransmission(string sock, out ulong size, string exportName = "")
    {
        var s = RawConnect(sock);
        var greeting = new byte[18];
        ReadExact(s, greeting);
        Assert.That(BinaryPrimitives.ReadUInt64BigEndian(greeting), Is.EqualTo(NbdMagic.NbdMagicValue));
        Assert.That(BinaryPrimitives.ReadUInt64BigEndian(greeting.AsSpan(8)), Is.EqualTo(NbdMagic.IHaveOpt));
        Assert.That(BinaryPrimitives.ReadUInt16BigEndian(greeting.AsSpan(16)), Is.EqualTo(3));
        var name = System.Text.Encoding.UTF8.GetBytes(exportName);
        var msg = new byte[4 + 16 + name.Length];
        BinaryPrimitives.WriteUInt32BigEndian(msg, 3);
        BinaryPrimitives.WriteUInt64BigEndian(msg.AsSpan(4), NbdMagic.IHaveOpt);
        BinaryPrimitives.WriteUInt32BigEndian(msg.AsSpan(12), (uint)NbdOption.ExportName);
        BinaryPrimitives.WriteUInt32BigEndian(msg.AsSpan(16), (uint)name.Length);
        name.CopyTo(msg, 20);
        s.Send(msg);
        var answer = new byte[10];
        ReadExact(s, answer);
        size = BinaryPrimitives.ReadUInt64BigEndian(answer);
        return s;
    }

    public static void ReadExact(Socket s, Span<byte> buf)
    {
        int done = 0;
        while (done < buf.Length)
        {
            int n = s.Receive(buf[done..]);
            if (n == 0) throw new EndOfStreamException();
            done += n;
        }
    }

    /// <summary>A request header's 28 bytes.</summary>
    public static byte[] Header(NbdCommand cmd, ulong cookie, ulong offset, uint length, NbdCommandFlags flags = 0)
    {
        var h = new byte[28];
        new NbdRequestHeader(flags, cmd, cookie, offset, length).Write(h);
        return h;
    }

    /// <summary>Reads one simple reply header and checks its magic.</summary>
    public static NbdSimpleReply ReadReply(Socket s)
    {
        var r = new byte[16];
        ReadExact(s, r);
        Assert.That(NbdSimpleReply.TryRead(r, out var reply, out var err), Is.True, err);
        return reply;
    }

    public static NbdSimpleReply Request(Socket s, NbdCommand cmd, ulong cookie, ulong offset, uint length, byte[]? payload = null, byte[]? readInto = null)
    {
        var h = new byte[28];
        new NbdRequestHeader(0, cmd, cookie, offset, length).Write(h);
        s.Send(h);
        if (payload != null) s.Send(payload);
        var r = new byte[16];
        ReadExact(s, r);
        Assert.That(NbdSimpleReply.TryRead(r, out var reply, out var err), Is.True, err);
        Assert.That(reply.Cookie, Is.EqualTo(cookie));
        if (readInto != null && reply.Error == 0) ReadExact(s, readInto.AsSpan(0, (int)length));
        return reply;
    }


    public static void SendOption(Socket s, uint option, ReadOnlySpan<byte> data)
    {
        var msg = new byte[16 + data.Length];
        BinaryPrimitives.WriteUInt64BigEndian(msg, NbdMagic.IHaveOpt);
        BinaryPrimitives.WriteUInt32BigEndian(msg.AsSpan(8), option);
        BinaryPrimitives.WriteUInt32BigEndian(msg.AsSpan(12), (uint)data.Length);
        data.CopyTo(msg.AsSpan(16));
        s.Send(msg);
    }

    /// <summary>Reads one option reply; checks its magic and the echoed option.</summary>
    public static (NbdOptionReplyType Type, byte[] Data) ReadOptionReply(Socket s, uint option)
    {
        var h = new byte[20];
        ReadExact(s, h);
        Assert.That(BinaryPrimitives.ReadUInt64BigEndian(h), Is.EqualTo(NbdMagic.OptionReply), "option reply magic");
        Assert.That(BinaryPrimitives.ReadUInt32BigEndian(h.AsSpan(8)), Is.EqualTo(option), "echoed option");
        var data = new byte[BinaryPrimitives.ReadUInt32BigEndian(h.AsSpan(16))];
        ReadExact(s, data);
        return ((NbdOptionReplyType)BinaryPrimitives.ReadUInt32BigEndian(h.AsSpan(12)), data);
    }

    /// <summary>Connects, reads the greeting and sends <paramref name="clientFlags"/>.</summary>
    public static Socket Negotiating(string sock, uint clientFlags = 3)
    {
        var s = RawConnect(sock);
        var greeting = new byte[18];
        ReadExact(s, greeting);
        var f = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(f, clientFlags);
        s.Send(f);
        return s;
    }

    public static byte[] GoData(string name, params NbdInfoType[] requests)
    {
        var n = System.Text.Encoding.UTF8.GetBytes(name);
        var d = new byte[4 + n.Length + 2 + 2 * requests.Length];
        BinaryPrimitives.WriteUInt32BigEndian(d, (uint)n.Length);
        n.CopyTo(d, 4);
        BinaryPrimitives.WriteUInt16BigEndian(d.AsSpan(4 + n.Length), (ushort)requests.Length);
        for (int i = 0; i < requests.Length; i++) BinaryPrimitives.WriteUInt16BigEndian(d.AsSpan(6 + n.Length + 2 * i), (ushort)requests[i]);
        return d;
    }
}
