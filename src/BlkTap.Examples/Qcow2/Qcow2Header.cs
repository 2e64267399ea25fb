using System.Buffers.Binary;
using System.Text;

namespace BlkTap.Examples.Qcow2;

/// <summary>
/// The qcow2 header (qemu's docs/interop/qcow2.txt, "Header"), versions 2 and 3, with the header extensions this
/// implementation reads (backing file format). Every field is big-endian on disk. Immutable except for the refcount
/// table location, which grows.
/// </summary>
/// <remarks>Threading: not thread-safe; one owner (the image).</remarks>
internal sealed class Qcow2Header
{
    public const uint Magic = 0x514649FB; // "QFI\xfb"
    public const int V2Length = 72;
    public const int V3MinLength = 104;
    public const int V3WrittenLength = 112;
    public const int MinClusterBits = 9, MaxClusterBits = 21;

    public const ulong IncompatDirty = 1, IncompatCorrupt = 2, IncompatExternalData = 4, IncompatCompressionType = 8, IncompatExtendedL2 = 16;
    public const uint ExtEnd = 0, ExtBackingFormat = 0xE2792ACA;

    public int Version { get; init; }
    public int ClusterBits { get; init; }
    public int ClusterSize => 1 << ClusterBits;
    public long Size { get; init; }
    public uint CryptMethod { get; init; }
    public int L1Size { get; init; }
    public long L1Offset { get; init; }
    public long RefcountTableOffset { get; set; }
    public int RefcountTableClusters { get; set; }
    public int SnapshotCount { get; init; }
    public long SnapshotsOffset { get; init; }
    public ulong Incompatible { get; init; }
    public ulong Compatible { get; init; }
    public ulong Autoclear { get; set; }
    public int RefcountOrder { get; init; } = 4;
    public int HeaderLength { get; init; }
    public byte CompressionType { get; init; }
    public string? BackingFile { get; init; }
    public string? BackingFormat { get; init; }
    /// <summary>Offset and size of the backing file name in cluster 0, to write it again as it was.</summary>
    public long BackingNameOffset { get; init; }

    /// <summary>L2 entries per L2 table (standard 8-byte entries).</summary>
    public int L2Entries => ClusterSize / 8;

    /// <summary>L1 entries needed for <paramref name="size"/> bytes with <paramref name="clusterBits"/>.</summary>
    public static long L1EntriesFor(long size, int clusterBits)
    {
        long perL2 = (1L << clusterBits) / 8 * (1L << clusterBits);
        return (size + perL2 - 1) / perL2;
    }

    /// <summary>Parses and validates the header of <paramref name="file"/>, whose length is <paramref name="length"/>.</summary>
    /// <exception cref="Qcow2FormatException">The header is truncated, malformed or asks for something unsupported.</exception>
    public static Qcow2Header Parse(ReadOnlySpan<byte> cluster0, long length, string file)
    {
        string F(string problem) => $"qcow2 image '{file}': {problem}";
        if (cluster0.Length < V2Length || length < V2Length) throw new Qcow2FormatException(F($"truncated header ({length} bytes, a header needs at least {V2Length})"));
        var h = cluster0;
        uint magic = BinaryPrimitives.ReadUInt32BigEndian(h);
        if (magic != Magic) throw new Qcow2FormatException(F($"bad magic 0x{magic:x8} (not a qcow2 image)"));
        uint version = BinaryPrimitives.ReadUInt32BigEndian(h[4..]);
        if (version is not (2 or 3)) throw new Qcow2FormatException(F($"unsupported version {version} (2 and 3 are supported)"));
        long backingOffset = (long)BinaryPrimitives.ReadUInt64BigEndian(h[8..]);
        uint backingSize = BinaryPrimitives.ReadUInt32BigEndian(h[16..]);
        uint clusterBits = BinaryPrimitives.ReadUInt32BigEndian(h[20..]);
        if (clusterBits is < MinClusterBits or > MaxClusterBits)
            throw new Qcow2FormatException(F($"cluster_bits {clusterBits} out of range ({MinClusterBits}..{MaxClusterBits}: 512 B to 2 MiB clusters)"));
        int cs = 1 << (int)clusterBits;
        ulong size = BinaryPrimitives.ReadUInt64BigEndian(h[24..]);
        if (size > long.MaxValue / 2 || size % 512 != 0) throw new Qcow2FormatException(F($"virtual size {size} is not a whole number of sectors below 2^62"));
        uint crypt = BinaryPrimitives.ReadUInt32BigEndian(h[32..]);
        if (crypt != 0) throw new Qcow2FormatException(F($"encrypted image (crypt_method {crypt}) is not supported"));
        uint l1Size = BinaryPrimitives.ReadUInt32BigEndian(h[36..]);
        long l1Offset = (long)BinaryPrimitives.ReadUInt64BigEndian(h[40..]);
        long rtOffset = (long)BinaryPrimitives.ReadUInt64BigEndian(h[48..]);
        uint rtClusters = BinaryPrimitives.ReadUInt32BigEndian(h[56..]);
        uint snapshots = BinaryPrimitives.ReadUInt32BigEndian(h[60..]);
        long snapshotsOffset = (long)BinaryPrimitives.ReadUInt64BigEndian(h[64..]);
        ulong incompat = 0, compat = 0, autoclear = 0;
        uint refcountOrder = 4, headerLength = V2Length;
        byte compression = 0;
        if (version == 3)
        {
            if (cluster0.Length < V3MinLength || length < V3MinLength) throw new Qcow2FormatException(F($"truncated header ({length} bytes, a version 3 header needs {V3MinLength})"));
            incompat = BinaryPrimitives.ReadUInt64BigEndian(h[72..]);
            compat = BinaryPrimitives.ReadUInt64BigEndian(h[80..]);
            autoclear = BinaryPrimitives.ReadUInt64BigEndian(h[88..]);
            refcountOrder = BinaryPrimitives.ReadUInt32BigEndian(h[96..]);
            headerLength = BinaryPrimitives.ReadUInt32BigEndian(h[100..]);
            if (headerLength < V3MinLength || headerLength > cs || headerLength % 8 != 0)
                throw new Qcow2FormatException(F($"header_length {headerLength} invalid (a multiple of 8 from {V3MinLength} to the cluster size)"));
            if (length < headerLength) throw new Qcow2FormatException(F($"truncated header ({length} bytes, header_length says {headerLength})"));
            if (headerLength > V3MinLength) compression = h[104];
        }
        const ulong known = IncompatDirty | IncompatCorrupt | IncompatExternalData | IncompatCompressionType | IncompatExtendedL2;
        if ((incompat & ~known) != 0) throw new Qcow2FormatException(F($"unknown incompatible feature bits 0x{incompat & ~known:x}"));
        if ((incompat & IncompatExternalData) != 0) throw new Qcow2FormatException(F("external data files (incompatible feature bit 2) are not supported"));
        if ((incompat & IncompatExtendedL2) != 0) throw new Qcow2FormatException(F("extended L2 entries (incompatible feature bit 4) are not supported yet"));
        // NOTE: qcow2.txt header byte 104: compression type 0 zlib, 1 zstd.
        if (compression > 1) throw new Qcow2FormatException(F($"unknown compression type {compression}"));
        if (refcountOrder > 6) throw new Qcow2FormatException(F($"refcount_order {refcountOrder} out of range (0..6)"));
        if (version == 2 && refcountOrder != 4) throw new Qcow2FormatException(F("version 2 images have 16-bit refcounts"));
        if (l1Size < L1EntriesFor((long)size, (int)clusterBits)) throw new Qcow2FormatException(F($"L1 table of {l1Size} entries is too small for {size} bytes"));
        if (l1Size > 32 * 1024 * 1024 / 8) throw new Qcow2FormatException(F($"L1 table of {l1Size} entries is too large"));
        CheckTable(F, "L1 table", l1Offset, (long)l1Size * 8, cs, length);
        if (rtClusters == 0 || rtClusters > 8 * 1024 * 1024 / cs * 8) throw new Qcow2FormatException(F($"refcount table of {rtClusters} clusters invalid"));
        CheckTable(F, "refcount table", rtOffset, (long)rtClusters * cs, cs, length);
        if (snapshots != 0) CheckTable(F, "snapshot table", snapshotsOffset, 1, cs, length);

        string? backing = null, backingFormat = null;
        if (backingOffset != 0)
        {
            if (backingSize == 0 || backingSize > 1023 || backingOffset < headerLength || backingOffset + backingSize > Math.Min(cs, length))
                throw new Qcow2FormatException(F($"backing file name at {backingOffset} ({backingSize} bytes) lies outside the first cluster"));
            backing = Encoding.UTF8.GetString(cluster0.Slice((int)backingOffset, (int)backingSize));
        }
        // Header extensions: type, length, data padded to 8 bytes, until type 0.
        int at = (int)headerLength;
        int end = (int)Math.Min(backingOffset != 0 ? backingOffset : cs, Math.Min(cluster0.Length, length));
        while (at + 8 <= end)
        {
            uint type = BinaryPrimitives.ReadUInt32BigEndian(h[at..]);
            uint len = BinaryPrimitives.ReadUInt32BigEndian(h[(at + 4)..]);
            if (type == ExtEnd) break;
            if (at + 8 + (long)len > end) throw new Qcow2FormatException(F($"header extension 0x{type:x8} at {at} runs past the header area"));
            if (type == ExtBackingFormat) backingFormat = Encoding.UTF8.GetString(cluster0.Slice(at + 8, (int)len));
            at += 8 + (int)((len + 7) & ~7u);
        }
        return new Qcow2Header
        {
            Version = (int)version, ClusterBits = (int)clusterBits, Size = (long)size, CryptMethod = crypt, L1Size = (int)l1Size, L1Offset = l1Offset,
            RefcountTableOffset = rtOffset, RefcountTableClusters = (int)rtClusters, SnapshotCount = (int)snapshots, SnapshotsOffset = snapshotsOffset,
            Incompatible = incompat, Compatible = compat, Autoclear = autoclear, RefcountOrder = (int)refcountOrder, HeaderLength = (int)headerLength,
            CompressionType = compression, BackingFile = backing, BackingFormat = backingFormat, BackingNameOffset = backingOffset,
        };
    }

    private static void CheckTable(Func<string, string> f, string what, long offset, long bytes, int cs, long length)
    {
        if (offset <= 0 || offset % cs != 0) throw new Qcow2FormatException(f($"{what} offset {offset} is not a cluster-aligned offset after the header"));
        if (offset > length || bytes > length - offset) throw new Qcow2FormatException(f($"{what} at {offset} ({bytes} bytes) lies outside the file ({length} bytes)"));
    }

    /// <summary>Writes the version 3 header fields (bytes 0..111) into <paramref name="h"/>; extensions are the caller's.</summary>
    public void WriteV3(Span<byte> h, long backingOffset, int backingSize)
    {
        h[..V3WrittenLength].Clear();
        BinaryPrimitives.WriteUInt32BigEndian(h, Magic);
        BinaryPrimitives.WriteUInt32BigEndian(h[4..], 3);
        BinaryPrimitives.WriteUInt64BigEndian(h[8..], (ulong)backingOffset);
        BinaryPrimitives.WriteUInt32BigEndian(h[16..], (uint)backingSize);
        BinaryPrimitives.WriteUInt32BigEndian(h[20..], (uint)ClusterBits);
        BinaryPrimitives.WriteUInt64BigEndian(h[24..], (ulong)Size);
        BinaryPrimitives.WriteUInt32BigEndian(h[36..], (uint)L1Size);
        BinaryPrimitives.WriteUInt64BigEndian(h[40..], (ulong)L1Offset);
        BinaryPrimitives.WriteUInt64BigEndian(h[48..], (ulong)RefcountTableOffset);
        BinaryPrimitives.WriteUInt32BigEndian(h[56..], (uint)RefcountTableClusters);
        BinaryPrimitives.WriteUInt32BigEndian(h[96..], (uint)RefcountOrder);
        BinaryPrimitives.WriteUInt32BigEndian(h[100..], V3WrittenLength);
    }

    /// <summary>Writes the autoclear feature bits (bytes 88..95) into an 8-byte span.</summary>
    public void WriteAutoclear(Span<byte> eight) => BinaryPrimitives.WriteUInt64BigEndian(eight, Autoclear);

    /// <summary>Writes the refcount table location (bytes 48..59) into a 12-byte span.</summary>
    public void WriteRefcountTableLocation(Span<byte> twelve)
    {
        BinaryPrimitives.WriteUInt64BigEndian(twelve, (ulong)RefcountTableOffset);
        BinaryPrimitives.WriteUInt32BigEndian(twelve[8..], (uint)RefcountTableClusters);
    }
}
