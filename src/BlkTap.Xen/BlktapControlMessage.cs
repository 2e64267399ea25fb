using System.Buffers.Binary;
using System.Runtime.CompilerServices;

namespace BlkTap.Xen;

/// <summary>Subtypes of the CMSG_BLKIF_BE messages the 2005 driver copies onto the control ring.</summary>
/// <remarks>NOTE: domain_controller.h 2005 CMSG_BLKIF_BE_*; the driver copies only type CMSG_BLKIF_BE (1).</remarks>
public enum BlkifBackendMessage : byte
{
    /// <summary>CMSG_BLKIF_BE_CREATE: a block interface (domid, handle) is created.</summary>
    Create = 0,
    /// <summary>CMSG_BLKIF_BE_DESTROY: the interface is destroyed.</summary>
    Destroy = 1,
    /// <summary>CMSG_BLKIF_BE_CONNECT: the frontend's ring is connected; its requests may follow.</summary>
    Connect = 2,
    /// <summary>CMSG_BLKIF_BE_DISCONNECT: the interface is disconnected.</summary>
    Disconnect = 3,
    /// <summary>CMSG_BLKIF_BE_VBD_CREATE: a virtual disk (vdevice, readonly) is added to the interface.</summary>
    VbdCreate = 4,
    /// <summary>CMSG_BLKIF_BE_VBD_DESTROY: a virtual disk is removed.</summary>
    VbdDestroy = 5,
}

/// <summary>The 60 payload bytes of a control message.</summary>
[InlineArray(BlktapControlMessage.PayloadSize)]
public struct BlktapControlPayload
{
    private byte _element0;
}

/// <summary>
/// One 64-byte <c>control_msg_t</c> of the 2005 device's control ring (page 0): type u8 @0, subtype u8 @1, id u8
/// @2, length u8 @3, msg[60] @4. The kernel puts a copy of every CMSG_BLKIF_BE message it receives from the domain
/// controller there (in modes INTERCEPT_FE and COPY_FE), before it handles it. A plain value: not thread-safe while mutated.
/// </summary>
/// <remarks>
/// <para>NOTE: domain_controller.h 2005 control_msg_t; blktap_controlmsg.c blkif_ctrlif_rx writes the copy before
/// the handler fills in the status, so status fields in the copy are whatever the controller sent.</para>
/// <para>NOTE: the ring is one-way: blktap_userdev.c blktap_write_ctrl_ring sets rsp_cons = rsp_prod and never
/// reads a response; blktaplib.c "currently don't respond to ctrl messages" and only advances rsp_prod.</para>
/// <para>The payload structs (domain_controller.h) are naturally aligned and start at msg[0]: domid u16 @0 and
/// blkif_handle u32 @4 in every blkif_be_* message; blkif_be_vbd_create adds pdevice u32 @8, dev_handle u32 @12,
/// vdevice u16 @16, readonly u16 @18, status u32 @20.</para>
/// </remarks>
public struct BlktapControlMessage
{
    /// <summary>sizeof(control_msg_t).</summary>
    public const int Size = 64;
    /// <summary>Offset of msg[].</summary>
    public const int PayloadOffset = 4;
    /// <summary>sizeof(msg).</summary>
    public const int PayloadSize = 60;
    /// <summary>CMSG_BLKIF_BE.</summary>
    public const byte TypeBlkifBackend = 1;
    /// <summary>CMSG_BLKIF_FE.</summary>
    public const byte TypeBlkifFrontend = 2;

    /// <summary>CMSG_*.</summary>
    public byte Type;
    /// <summary>The subtype (for CMSG_BLKIF_BE, a <see cref="BlkifBackendMessage"/>).</summary>
    public byte Subtype;
    /// <summary>The controller's message id (echoed in its response).</summary>
    public byte Id;
    /// <summary>Bytes of <see cref="Payload"/> in use.</summary>
    public byte Length;
    /// <summary>msg[].</summary>
    public BlktapControlPayload Payload;

    /// <summary>A CMSG_BLKIF_BE message about interface (<paramref name="domid"/>, <paramref name="handle"/>).</summary>
    public static BlktapControlMessage BlkifBackend(BlkifBackendMessage subtype, ushort domid, uint handle = 0, byte length = 12)
    {
        var m = new BlktapControlMessage { Type = TypeBlkifBackend, Subtype = (byte)subtype, Length = length };
        Span<byte> p = m.Payload;
        BinaryPrimitives.WriteUInt16LittleEndian(p, domid);
        BinaryPrimitives.WriteUInt32LittleEndian(p[4..], handle);
        return m;
    }

    /// <summary>A CMSG_BLKIF_BE_VBD_CREATE message.</summary>
    public static BlktapControlMessage VbdCreate(ushort domid, uint handle, ushort vdevice, bool readOnly, uint pdevice = 0)
    {
        var m = BlkifBackend(BlkifBackendMessage.VbdCreate, domid, handle, 24);
        Span<byte> p = m.Payload;
        BinaryPrimitives.WriteUInt32LittleEndian(p[8..], pdevice);
        BinaryPrimitives.WriteUInt16LittleEndian(p[16..], vdevice);
        BinaryPrimitives.WriteUInt16LittleEndian(p[18..], (ushort)(readOnly ? 1 : 0));
        return m;
    }

    /// <summary>blkif_be_*.domid.</summary>
    public readonly ushort Domain => U16(0);
    /// <summary>blkif_be_*.blkif_handle.</summary>
    public readonly uint BlkifHandle => U32(4);
    /// <summary>blkif_be_vbd_create.pdevice.</summary>
    public readonly uint PhysicalDevice => U32(8);
    /// <summary>blkif_be_vbd_create.vdevice.</summary>
    public readonly ushort VirtualDevice => U16(16);
    /// <summary>blkif_be_vbd_create.readonly != 0.</summary>
    public readonly bool ReadOnly => U16(18) != 0;

    private readonly ushort U16(int offset)
    {
        ReadOnlySpan<byte> p = Payload;
        return BinaryPrimitives.ReadUInt16LittleEndian(p[offset..]);
    }

    private readonly uint U32(int offset)
    {
        ReadOnlySpan<byte> p = Payload;
        return BinaryPrimitives.ReadUInt32LittleEndian(p[offset..]);
    }

    /// <summary>Decodes 64 bytes. Never throws on content.</summary>
    /// <exception cref="ArgumentException">Fewer than 64 bytes.</exception>
    public static BlktapControlMessage Decode(ReadOnlySpan<byte> source)
    {
        if (source.Length < Size) throw new ArgumentException($"a control message is {Size} bytes", nameof(source));
        var m = new BlktapControlMessage { Type = source[0], Subtype = source[1], Id = source[2], Length = source[3] };
        source.Slice(PayloadOffset, PayloadSize).CopyTo(m.Payload);
        return m;
    }

    /// <summary>Encodes into <paramref name="destination"/> (at least 64 bytes).</summary>
    public readonly void Encode(Span<byte> destination)
    {
        if (destination.Length < Size) throw new ArgumentException($"a control message is {Size} bytes", nameof(destination));
        destination[0] = Type;
        destination[1] = Subtype;
        destination[2] = Id;
        destination[3] = Length;
        ReadOnlySpan<byte> p = Payload;
        p.CopyTo(destination.Slice(PayloadOffset, PayloadSize));
    }
}
