using System.Buffers.Binary;

namespace BlkTap.Xen;

/// <summary>
/// One 2005 <c>vdisk_t</c>, the element a PROBE response writes into the probe buffer: capacity u64 @0 (512-byte
/// sectors), device u16 @8, info u16 @10 (VDISK_*), sector_size u16 @12; 16 bytes on both builds. Immutable: thread-safe.
/// </summary>
/// <remarks>NOTE: blkif.h 2005 BLKIF_OP_PROBE: "The response is a list of vdisk_t elements copied into the
/// out-of-band probe buffer. On success the response status field contains the number of vdisk_t elements."
/// VDISK_CDROM 1, VDISK_REMOVABLE 2, VDISK_READONLY 4.</remarks>
/// <param name="Capacity">Size in 512-byte sectors.</param>
/// <param name="Device">The virtual device number (the VBD's vdevice).</param>
/// <param name="Info">VDISK_* flags.</param>
/// <param name="SectorSize">The minimum request alignment.</param>
public readonly record struct Blkif2005Vdisk(ulong Capacity, ushort Device, ushort Info, ushort SectorSize)
{
    /// <summary>sizeof(vdisk_t).</summary>
    public const int Size = 16;
    /// <summary>VDISK_READONLY.</summary>
    public const ushort InfoReadOnly = 0x4;

    /// <summary>Encodes into <paramref name="destination"/> (at least 16 bytes), padding zeroed.</summary>
    public void Encode(Span<byte> destination)
    {
        var d = destination[..Size];
        d.Clear();
        BinaryPrimitives.WriteUInt64LittleEndian(d, Capacity);
        BinaryPrimitives.WriteUInt16LittleEndian(d[8..], Device);
        BinaryPrimitives.WriteUInt16LittleEndian(d[10..], Info);
        BinaryPrimitives.WriteUInt16LittleEndian(d[12..], SectorSize);
    }

    /// <summary>Decodes 16 bytes.</summary>
    public static Blkif2005Vdisk Decode(ReadOnlySpan<byte> source) => new(
        BinaryPrimitives.ReadUInt64LittleEndian(source), BinaryPrimitives.ReadUInt16LittleEndian(source[8..]),
        BinaryPrimitives.ReadUInt16LittleEndian(source[10..]), BinaryPrimitives.ReadUInt16LittleEndian(source[12..]));
}
