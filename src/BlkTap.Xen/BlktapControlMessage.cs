using System.Buffers.Binary;
using System.Text;

namespace BlkTap.Xen;

/// <summary>Kinds of message on the 2005 device's control ring (page 0).</summary>
public enum BlktapControlType : byte
{
    /// <summary>A domain's disk is being attached; carries the image identifier. The answer carries the disk geometry.</summary>
    Attach = 1,
    /// <summary>The domain's frontend is connected: its requests may appear on the fe ring.</summary>
    Connect = 2,
    /// <summary>The domain is gone: the tap closes its session.</summary>
    Disconnect = 3,
}

/// <summary>
/// One 64-byte message of the 2005 <c>/dev/blktap</c> control ring, in both directions (the kernel's request
/// and the tap's answer share the slot, as blkif requests and responses do).
/// </summary>
/// <remarks>
/// NOTE: the 2005 driver's control messages are barely specified (seed/blktap-README-2005.txt names only
/// "control messages ... connect, disconnect"), so this project fixes its own format, documented in
/// docs/xen-deploy.md. The control page is a ring.h shared ring (header of 64 bytes, req_prod @0 written by the
/// kernel, rsp_prod @8 written by the tap) of 32 entries of 64 bytes, little-endian:
/// type u8 @0, reserved u8 @1, domid u16 @2, status s16 @4 (answer: 0 done, -1 refused, -2 unknown type),
/// image_len u16 @6 (attach), sectors u64 @8 (answer to attach), sector_size u32 @16 (answer), info u32 @20
/// (answer; VDISK_READONLY = 4), image identifier UTF-8 @24..63 (attach; at most 40 bytes).
/// </remarks>
/// <param name="Type">The kind of message.</param>
/// <param name="Domain">The frontend domain concerned.</param>
/// <param name="Status">The answer's status.</param>
/// <param name="Sectors">The disk size (answer to attach).</param>
/// <param name="SectorSize">The logical sector size (answer to attach).</param>
/// <param name="Info">The VDISK_* bits (answer to attach).</param>
/// <param name="ImageId">The image identifier (attach), or null.</param>
public readonly record struct BlktapControlMessage(
    BlktapControlType Type, ushort Domain, short Status = 0, ulong Sectors = 0, uint SectorSize = 0, uint Info = 0, string? ImageId = null)
{
    /// <summary>Bytes per message (and per control ring entry).</summary>
    public const int Size = 64;
    /// <summary>Offset of the image identifier.</summary>
    public const int ImageOffset = 24;
    /// <summary>The longest image identifier, in UTF-8 bytes.</summary>
    public const int MaxImageBytes = Size - ImageOffset;
    /// <summary>Answer status: done.</summary>
    public const short StatusOkay = 0;
    /// <summary>Answer status: refused (unknown domain, already attached, a hook refused).</summary>
    public const short StatusRefused = -1;
    /// <summary>Answer status: unknown message type.</summary>
    public const short StatusUnknownType = -2;

    /// <summary>Encodes into <paramref name="destination"/> (at least <see cref="Size"/> bytes).</summary>
    /// <exception cref="ArgumentException">The image identifier is longer than <see cref="MaxImageBytes"/> UTF-8 bytes.</exception>
    public void Encode(Span<byte> destination)
    {
        var d = destination[..Size];
        d.Clear();
        d[0] = (byte)Type;
        BinaryPrimitives.WriteUInt16LittleEndian(d[2..], Domain);
        BinaryPrimitives.WriteInt16LittleEndian(d[4..], Status);
        BinaryPrimitives.WriteUInt64LittleEndian(d[8..], Sectors);
        BinaryPrimitives.WriteUInt32LittleEndian(d[16..], SectorSize);
        BinaryPrimitives.WriteUInt32LittleEndian(d[20..], Info);
        if (ImageId != null)
        {
            if (Encoding.UTF8.GetByteCount(ImageId) > MaxImageBytes)
                throw new ArgumentException($"an image identifier is at most {MaxImageBytes} UTF-8 bytes", nameof(destination));
            int n = Encoding.UTF8.GetBytes(ImageId, d[ImageOffset..]);
            BinaryPrimitives.WriteUInt16LittleEndian(d[6..], (ushort)n);
        }
    }

    /// <summary>
    /// Decodes a message. Never throws on any 64 bytes: an image length beyond the field returns false with a
    /// reason; invalid UTF-8 is replaced.
    /// </summary>
    public static bool TryDecode(ReadOnlySpan<byte> source, out BlktapControlMessage message, out string? error)
    {
        message = default;
        error = null;
        if (source.Length < Size) { error = $"a control message is {Size} bytes, got {source.Length}"; return false; }
        int imageLength = BinaryPrimitives.ReadUInt16LittleEndian(source[6..]);
        if (imageLength > MaxImageBytes) { error = $"image_len {imageLength} exceeds the {MaxImageBytes}-byte field"; return false; }
        message = new BlktapControlMessage(
            (BlktapControlType)source[0],
            BinaryPrimitives.ReadUInt16LittleEndian(source[2..]),
            BinaryPrimitives.ReadInt16LittleEndian(source[4..]),
            BinaryPrimitives.ReadUInt64LittleEndian(source[8..]),
            BinaryPrimitives.ReadUInt32LittleEndian(source[16..]),
            BinaryPrimitives.ReadUInt32LittleEndian(source[20..]),
            imageLength == 0 ? null : Encoding.UTF8.GetString(source.Slice(ImageOffset, imageLength)));
        return true;
    }
}
