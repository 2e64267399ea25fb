using System.Buffers.Binary;
using System.Numerics;

namespace BlkTap.Examples.Internal;

/// <summary>
/// The overlay header (first 4 KiB of the file), see docs/cow-format.md. Little-endian:
/// magic[8] @0, version u32 @8, header size u32 @12, base size u64 @16, cluster size u32 @24,
/// flags u32 @28, map offset u64 @32, map length u64 @40, data offset u64 @48, CRC-32C u32 @56
/// over bytes 0..55. The rest of the 4 KiB is zero.
/// </summary>
internal sealed class CowHeader
{
    public const int Size = 4096;
    public const uint CurrentVersion = 1;
    public const int MapPage = 4096;

    // NOTE: format of our own (docs/cow-format.md); the magic is ASCII "BTAPCOW" + 0x0A so a text
    // transfer that mangles line ends is detected.
    public static ReadOnlySpan<byte> Magic => "BTAPCOW\n"u8;

    public required long BaseSize { get; init; }
    public required int ClusterSize { get; init; }
    public long MapOffset => Size;
    public long MapLength => RoundUp((BaseSize / 512 + 7) / 8, MapPage);
    public long DataOffset => RoundUp(MapOffset + MapLength, ClusterSize);
    public long FileLength => DataOffset + BaseSize;

    public static bool IsValidCluster(int cluster) => cluster is 4096 or 65536;

    public static CowHeader Create(long baseSize, int clusterSize)
    {
        if (baseSize < 512 || baseSize % 512 != 0) throw new CowFormatException($"base size {baseSize} is not a positive multiple of 512 bytes");
        if (!IsValidCluster(clusterSize)) throw new CowFormatException($"cluster size {clusterSize} is not 4K or 64K");
        return new CowHeader { BaseSize = baseSize, ClusterSize = clusterSize };
    }

    public void Write(Span<byte> block)
    {
        block[..Size].Clear();
        Magic.CopyTo(block);
        BinaryPrimitives.WriteUInt32LittleEndian(block[8..], CurrentVersion);
        BinaryPrimitives.WriteUInt32LittleEndian(block[12..], Size);
        BinaryPrimitives.WriteInt64LittleEndian(block[16..], BaseSize);
        BinaryPrimitives.WriteInt32LittleEndian(block[24..], ClusterSize);
        BinaryPrimitives.WriteUInt32LittleEndian(block[28..], 0);
        BinaryPrimitives.WriteInt64LittleEndian(block[32..], MapOffset);
        BinaryPrimitives.WriteInt64LittleEndian(block[40..], MapLength);
        BinaryPrimitives.WriteInt64LittleEndian(block[48..], DataOffset);
        BinaryPrimitives.WriteUInt32LittleEndian(block[56..], Crc32C(block[..56]));
    }

    /// <summary>Parses and checks a header; throws <see cref="CowFormatException"/> naming the problem.</summary>
    public static CowHeader Parse(ReadOnlySpan<byte> block, long fileLength, string path)
    {
        if (block.Length < 64 || fileLength < Size) throw new CowFormatException($"cow overlay '{path}' is too short ({fileLength} bytes) to hold a header");
        if (!block[..8].SequenceEqual(Magic)) throw new CowFormatException($"'{path}' is not a cow overlay (bad magic)");
        uint version = BinaryPrimitives.ReadUInt32LittleEndian(block[8..]);
        if (version != CurrentVersion) throw new CowFormatException($"cow overlay '{path}' has version {version}; this build reads version {CurrentVersion}");
        uint crc = BinaryPrimitives.ReadUInt32LittleEndian(block[56..]);
        if (crc != Crc32C(block[..56])) throw new CowFormatException($"cow overlay '{path}': header checksum mismatch (the header is corrupt)");
        if (block.Length >= Size && block[60..Size].IndexOfAnyExcept((byte)0) >= 0)
            throw new CowFormatException($"cow overlay '{path}': reserved header bytes are not zero (the header is corrupt)");
        uint headerSize = BinaryPrimitives.ReadUInt32LittleEndian(block[12..]);
        long baseSize = BinaryPrimitives.ReadInt64LittleEndian(block[16..]);
        int cluster = BinaryPrimitives.ReadInt32LittleEndian(block[24..]);
        uint flags = BinaryPrimitives.ReadUInt32LittleEndian(block[28..]);
        if (headerSize != Size || flags != 0) throw new CowFormatException($"cow overlay '{path}': unsupported header size {headerSize} or flags 0x{flags:x}");
        if (baseSize < 512 || baseSize % 512 != 0) throw new CowFormatException($"cow overlay '{path}': base size {baseSize} is not a positive multiple of 512");
        if (!IsValidCluster(cluster)) throw new CowFormatException($"cow overlay '{path}': cluster size {cluster} is not 4K or 64K");
        var h = new CowHeader { BaseSize = baseSize, ClusterSize = cluster };
        if (BinaryPrimitives.ReadInt64LittleEndian(block[32..]) != h.MapOffset
            || BinaryPrimitives.ReadInt64LittleEndian(block[40..]) != h.MapLength
            || BinaryPrimitives.ReadInt64LittleEndian(block[48..]) != h.DataOffset)
            throw new CowFormatException($"cow overlay '{path}': map/data offsets do not match the base size and cluster size");
        if (fileLength != h.FileLength)
            throw new CowFormatException($"cow overlay '{path}' is {fileLength} bytes long, expected {h.FileLength} (truncated or extended)");
        return h;
    }

    private static long RoundUp(long v, long unit) => (v + unit - 1) / unit * unit;

    /// <summary>CRC-32C (Castagnoli), initial value and final xor 0xFFFFFFFF.</summary>
    public static uint Crc32C(ReadOnlySpan<byte> data)
    {
        uint crc = 0xFFFFFFFF;
        while (data.Length >= 8) { crc = BitOperations.Crc32C(crc, BinaryPrimitives.ReadUInt64LittleEndian(data)); data = data[8..]; }
        foreach (byte b in data) crc = BitOperations.Crc32C(crc, b);
        return ~crc;
    }
}
