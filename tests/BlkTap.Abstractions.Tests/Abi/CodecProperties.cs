using BlkTap.Testing;
using FsCheck;
using FsCheck.Fluent;
using NUnit.Framework;
using BlkTap.Testing.Generators;

namespace BlkTap.Abstractions.Tests.Abi;

/// <summary>Properties of <see cref="BlkifCodec"/> on both ABIs and all three request forms.</summary>
[TestFixture]
public sealed class CodecProperties
{
    private const byte Sentinel = 0xCC;

    [FsCheck.NUnit.Property(Arbitrary = new[] { typeof(BlkTapArbitraries) }, MaxTest = 500)]
    public void EncodeThenDecode_AnyEncodableRequest_GivesBackEveryFieldTheFormCarries(EncodableRequest e)
    {
        var layout = e.Layout;
        var buffer = new byte[layout.RequestSize + 32];
        Array.Fill(buffer, Sentinel);
        BlkifCodec.EncodeRequest(e.Request, layout, buffer);
        Assert.That(buffer[layout.RequestSize..], Is.All.EqualTo(Sentinel), "EncodeRequest wrote past RequestSize");

        BlkifCodec.DecodeRequest(buffer.AsSpan(0, layout.RequestSize), layout, out var decoded);
        Assert.That(BlkifRequestText.Describe(decoded), Is.EqualTo(BlkifRequestText.Describe(e.Request)));
    }

    [FsCheck.NUnit.Property(Arbitrary = new[] { typeof(BlkTapArbitraries) }, MaxTest = 1000)]
    public void Decode_AnyBytesInExactlyOneSlot_NeverThrowsAndReencodesToTheSameRequest(RingSlot slot)
    {
        // The slot array is exactly RequestSize long: any read outside it would throw.
        Assert.That(slot.Bytes, Has.Length.EqualTo(slot.Layout.RequestSize));
        BlkifCodec.DecodeRequest(slot.Bytes, slot.Layout, out var decoded);
        Assert.That((byte)decoded.Operation, Is.EqualTo(slot.Bytes[BlkifLayout.Operation]));

        var again = new byte[slot.Layout.RequestSize];
        BlkifCodec.EncodeRequest(decoded, slot.Layout, again);
        BlkifCodec.DecodeRequest(again, slot.Layout, out var redecoded);
        Assert.That(BlkifRequestText.Describe(redecoded), Is.EqualTo(BlkifRequestText.Describe(decoded)));
    }

    [FsCheck.NUnit.Property(Arbitrary = new[] { typeof(BlkTapArbitraries) })]
    public void Decode_SlotShorterThanRequestSize_ThrowsArgumentExceptionNamingTheSize(BlkifProtocol protocol, byte shortBy)
    {
        var layout = BlkifLayout.For(protocol);
        int length = Math.Max(0, layout.RequestSize - 1 - shortBy);
        var ex = Assert.Throws<ArgumentException>(() => BlkifCodec.DecodeRequest(new byte[length], layout, out _));
        Assert.That(ex!.Message, Does.Contain(layout.RequestSize.ToString(System.Globalization.CultureInfo.InvariantCulture)));
    }

    [FsCheck.NUnit.Property(Arbitrary = new[] { typeof(BlkTapArbitraries) }, MaxTest = 300)]
    public void EncodeThenDecodeResponse_AnyResponse_RoundTripsWithinResponseSize(BlkifProtocol protocol, ulong id, byte operation, short status)
    {
        var layout = BlkifLayout.For(protocol);
        var response = new BlkifResponse(id, (BlkifOperation)operation, (BlkifStatus)status);
        var buffer = new byte[layout.ResponseSize + 16];
        Array.Fill(buffer, Sentinel);
        BlkifCodec.EncodeResponse(response, layout, buffer);
        Assert.That(buffer[layout.ResponseSize..], Is.All.EqualTo(Sentinel), "EncodeResponse wrote past ResponseSize");
        Assert.That(BlkifCodec.DecodeResponse(buffer.AsSpan(0, layout.ResponseSize), layout), Is.EqualTo(response));
    }

    [FsCheck.NUnit.Property(Arbitrary = new[] { typeof(BlkTapArbitraries) })]
    public void DecodeResponse_AnyBytes_NeverReadsPastResponseSize(BlkifProtocol protocol, ulong a, ulong b)
    {
        var layout = BlkifLayout.For(protocol);
        var bytes = new byte[layout.ResponseSize];
        BitConverter.TryWriteBytes(bytes, a);
        BitConverter.TryWriteBytes(bytes.AsSpan(layout.ResponseSize - 4), (uint)b);
        var r = BlkifCodec.DecodeResponse(bytes, layout);
        Assert.That(r.Id, Is.EqualTo(BitConverter.ToUInt64(bytes, layout.ResponseId)));
        Assert.Throws<ArgumentException>(() => BlkifCodec.DecodeResponse(bytes.AsSpan(0, layout.ResponseSize - 1), layout));
    }

    [TestCase(BlkifProtocol.X86_64)]
    [TestCase(BlkifProtocol.X86_32)]
    public void Encode_SegmentCountThatDoesNotFitTheWireField_ThrowsInsteadOfTruncating(BlkifProtocol protocol)
    {
        var layout = BlkifLayout.For(protocol);
        var slot = new byte[layout.RequestSize];
        var rw = new BlkifRequest { Operation = BlkifOperation.Write, SegmentCount = 256 };
        var negative = new BlkifRequest { Operation = BlkifOperation.Read, SegmentCount = -1 };
        var indirect = new BlkifRequest { Operation = BlkifOperation.Indirect, SegmentCount = 65536 };
        Assert.Multiple(() =>
        {
            Assert.That(() => BlkifCodec.EncodeRequest(rw, layout, slot), Throws.TypeOf<ArgumentOutOfRangeException>().With.Message.Contains("u8"));
            Assert.That(() => BlkifCodec.EncodeRequest(negative, layout, slot), Throws.TypeOf<ArgumentOutOfRangeException>());
            Assert.That(() => BlkifCodec.EncodeRequest(indirect, layout, slot), Throws.TypeOf<ArgumentOutOfRangeException>().With.Message.Contains("u16"));
            Assert.That(() => BlkifCodec.EncodeRequest(rw, layout, new byte[layout.RequestSize - 1]), Throws.ArgumentException);
            Assert.That(() => BlkifCodec.EncodeResponse(default, layout, new byte[layout.ResponseSize - 1]), Throws.ArgumentException);
        });
    }

    [Test]
    public void Decode_GuestRewritesSlotAfterDecode_DecodedRequestUnchanged()
    {
        var layout = BlkifLayout.X86_64;
        var request = new BlkifRequest { Operation = BlkifOperation.Write, SegmentCount = 1, Id = 7, Sector = 8 };
        request.Segments[0] = new BlkifSegment(3, 0, 7);
        var slot = new byte[layout.RequestSize];
        BlkifCodec.EncodeRequest(request, layout, slot);
        BlkifCodec.DecodeRequest(slot, layout, out var decoded);
        Array.Fill(slot, (byte)0xFF); // the guest scribbles on the shared slot afterwards
        Assert.That(BlkifRequestText.Describe(decoded), Is.EqualTo(BlkifRequestText.Describe(request)));
    }
}
