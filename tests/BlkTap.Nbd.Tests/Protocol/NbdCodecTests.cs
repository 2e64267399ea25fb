using System.Buffers.Binary;
using BlkTap.Nbd;
using NUnit.Framework;

namespace BlkTap.Nbd.Tests.Protocol;

/// <summary>Request header and simple reply codecs: byte layout, round trips, and bad input.</summary>
public class NbdCodecTests
{
    [FsCheck.NUnit.Property]
    public bool RequestHeader_AnyFields_RoundTripsBigEndianAtSpecOffsets(ushort flags, ushort type, ulong cookie, ulong offset, uint length)
    {
        var h = new NbdRequestHeader((NbdCommandFlags)flags, (NbdCommand)type, cookie, offset, length);
        var b = new byte[NbdMagic.RequestHeaderSize];
        h.Write(b);
        // NOTE: proto.md "Request message": magic @0, flags @4, type @6, cookie @8, offset @16, length @24.
        bool layout = BinaryPrimitives.ReadUInt32BigEndian(b) == 0x25609513
            && BinaryPrimitives.ReadUInt16BigEndian(b.AsSpan(4)) == flags
            && BinaryPrimitives.ReadUInt16BigEndian(b.AsSpan(6)) == type
            && BinaryPrimitives.ReadUInt64BigEndian(b.AsSpan(8)) == cookie
            && BinaryPrimitives.ReadUInt64BigEndian(b.AsSpan(16)) == offset
            && BinaryPrimitives.ReadUInt32BigEndian(b.AsSpan(24)) == length;
        return layout && NbdRequestHeader.TryRead(b, out var back, out var err) && err == null && back == h;
    }

    [FsCheck.NUnit.Property]
    public bool SimpleReply_AnyFields_RoundTrips(uint error, ulong cookie)
    {
        var r = new NbdSimpleReply(error, cookie);
        var b = new byte[NbdMagic.SimpleReplyHeaderSize];
        r.Write(b);
        return BinaryPrimitives.ReadUInt32BigEndian(b) == 0x67446698
            && NbdSimpleReply.TryRead(b, out var back, out _) && back == r;
    }

    [FsCheck.NUnit.Property]
    public bool RequestHeader_AnyWrongMagic_RejectedNamingTheMagic(uint magic, byte[] rest)
    {
        if (magic == NbdMagic.Request) return true;
        var b = new byte[28];
        rest.AsSpan(0, Math.Min(rest.Length, 24)).CopyTo(b.AsSpan(4));
        BinaryPrimitives.WriteUInt32BigEndian(b, magic);
        return !NbdRequestHeader.TryRead(b, out _, out var err) && err!.Contains($"0x{magic:x8}");
    }

    [Test]
    public void TryRead_Truncated_FalseWithMessage()
    {
        Assert.That(NbdRequestHeader.TryRead(new byte[27], out _, out var e1), Is.False);
        Assert.That(e1, Does.Contain("truncated"));
        Assert.That(NbdSimpleReply.TryRead(new byte[15], out _, out var e2), Is.False);
        Assert.That(e2, Does.Contain("truncated"));
    }

    [Test]
    public void SimpleReply_StructuredReplyMagic_SaysNotNegotiated()
    {
        var b = new byte[16];
        BinaryPrimitives.WriteUInt32BigEndian(b, NbdMagic.StructuredReply);
        Assert.That(NbdSimpleReply.TryRead(b, out _, out var err), Is.False);
        Assert.That(err, Does.Contain("structured"));
    }

    [Test]
    public void Write_ShortDestination_ArgumentException()
    {
        Assert.That(() => new NbdRequestHeader(0, NbdCommand.Read, 1, 0, 0).Write(new byte[27]), Throws.ArgumentException);
        Assert.That(() => new NbdSimpleReply(0, 1).Write(new byte[15]), Throws.ArgumentException);
    }

    [Test]
    public void Magics_AsciiNames_MatchSpec()
    {
        var b = new byte[8];
        BinaryPrimitives.WriteUInt64BigEndian(b, NbdMagic.NbdMagicValue);
        Assert.That(System.Text.Encoding.ASCII.GetString(b), Is.EqualTo("NBDMAGIC"));
        BinaryPrimitives.WriteUInt64BigEndian(b, NbdMagic.IHaveOpt);
        Assert.That(System.Text.Encoding.ASCII.GetString(b), Is.EqualTo("IHAVEOPT"));
        Assert.That(NbdMagic.OptionReply, Is.EqualTo(0x3e889045565a9UL));
        Assert.That((uint)NbdOptionReplyType.ErrUnsup, Is.EqualTo((1u << 31) + 1));
        Assert.That((uint)NbdOptionReplyType.ErrUnknown, Is.EqualTo((1u << 31) + 6));
    }
}
