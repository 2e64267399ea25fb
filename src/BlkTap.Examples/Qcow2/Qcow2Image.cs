using System.Buffers.Binary;
using BlkTap.Storage;

namespace BlkTap.Examples.Qcow2;

/// <summary>
/// A qcow2 image (qemu's docs/interop/qcow2.txt), versions 2 and 3, opened for reading or for reading and writing:
/// the L1 table and the L2 tables and refcount blocks it touches are cached in memory; reads go through L1 and L2 to
/// data clusters, zero clusters, compressed clusters (zlib, zstd) or the backing file (raw or qcow2, read-only, chains);
/// writes allocate clusters (copying the rest of the cluster from what was there) and <see cref="Flush"/> makes them
/// durable in crash-safe order: data, then refcount blocks, then the refcount table and the header, then L2 tables,
/// then L1, then the refcount decrements of clusters that were dropped.
/// </summary>
/// <remarks>
/// Threading: not thread-safe; one owner thread (the tap's loop). A bad image is refused at open with a
/// <see cref="Qcow2FormatException"/> whose message names the file and the problem; I/O errors are
/// <see cref="IOException"/>; a corrupt entry met later is a <see cref="Qcow2FormatException"/> for that request.
/// Every file goes through an <see cref="IStorageProvider"/>, so the power-cut simulation can sit under it.
/// </remarks>
public sealed partial class Qcow2Image : IQcow2Backing
{
    internal const ulong OffsetMask = 0x00FF_FFFF_FFFF_FE00;
    internal const ulong CopiedFlag = 1UL << 63, CompressedFlag = 1UL << 62, ZeroFlag = 1;
    private const ulong L1Reserved = 0x7F00_0000_0000_01FF, L2Reserved = 0x3F00_0000_0000_01FE;

    private readonly IStorageFile _file;
    private readonly Qcow2Header _header;
    private readonly IQcow2Backing? _backing;
    private readonly long[] _l1;
    private readonly Qcow2Refcounts? _refcounts;
    private readonly Dictionary<long, byte[]> _l2 = [];
    private readonly HashSet<long> _dirtyL2 = [];
    private readonly byte[] _cluster, _inflated;
    private long _inflatedFrom = -1;
    private bool _l1Dirty, _disposed;

    private Qcow2Image(string path, IStorageFile file, Qcow2Header header, IQcow2Backing? backing, long[] l1, bool writable)
    {
        Path = path;
        _file = file;
        _header = header;
        _backing = backing;
        _l1 = l1;
        _refcounts = writable ? new Qcow2Refcounts(file, header, path) : null;
        _cluster = new byte[header.ClusterSize];
        _inflated = new byte[header.ClusterSize];
    }

    /// <summary>The image file.</summary>
    public string Path { get; }
    /// <summary>The virtual disk's size in bytes.</summary>
    public long Size => _header.Size;
    /// <summary>The cluster size in bytes (512 B to 2 MiB).</summary>
    public int ClusterSize => _header.ClusterSize;
    /// <summary>The header version (2 or 3).</summary>
    public int Version => _header.Version;
    /// <summary>True when opened read-only.</summary>
    public bool ReadOnly => _refcounts == null;
    /// <summary>The backing file name as the header records it (null: none).</summary>
    public string? BackingFile => _header.BackingFile;

    private int ClusterBits => _header.ClusterBits;
    private int L2Entries => _header.L2Entries;

    /// <summary>Reads <c>buffer.Length</c> bytes of the virtual disk at <paramref name="offset"/>.</summary>
    public void ReadAt(long offset, Span<byte> buffer)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        while (!buffer.IsEmpty)
        {
            if (offset >= Size) { buffer.Clear(); return; }
            int intra = (int)(offset & (ClusterSize - 1));
            int n = (int)Math.Min(Math.Min(buffer.Length, ClusterSize - intra), Size - offset);
            ReadInCluster(offset, Lookup(offset >> ClusterBits), buffer[..n]);
            buffer = buffer[n..];
            offset += n;
        }
    }

    /// <summary>Reads within one guest cluster whose L2 entry is <paramref name="entry"/> (0 when its L1 entry is unallocated).</summary>
    private void ReadInCluster(long offset, ulong entry, Span<byte> buffer)
    {
        int intra = (int)(offset & (ClusterSize - 1));
        if ((entry & CompressedFlag) != 0)
        {
            Inflate(entry).AsSpan(intra, buffer.Length).CopyTo(buffer);
            return;
        }
        long host = (long)(entry & OffsetMask);
        // NOTE: qcow2.txt: bit 0 of a standard L2 entry (version 3) means "reads as zeroes", allocated or not.
        if ((entry & ZeroFlag) != 0 && _header.Version >= 3) buffer.Clear();
        else if (host != 0) _file.ReadFully(buffer, host + intra);
        else if (_backing != null) _backing.ReadAt(offset, buffer);
        else buffer.Clear();
    }

    /// <summary>The L2 entry of guest cluster <paramref name="guestCluster"/>; 0 when unallocated at either level.</summary>
    private ulong Lookup(long guestCluster)
    {
        long l1i = guestCluster / L2Entries;
        long l2At = (long)((ulong)_l1[l1i] & OffsetMask);
        if (l2At == 0) return 0;
        return BinaryPrimitives.ReadUInt64BigEndian(L2Table(l2At).AsSpan((int)(guestCluster % L2Entries) * 8));
    }

    private byte[] L2Table(long at)
    {
        if (_l2.TryGetValue(at, out var t)) return t;
        t = new byte[ClusterSize];
        _file.ReadFully(t, at);
        long length = _file.Length;
        for (int i = 0; i < L2Entries; i++)
        {
            ulong e = BinaryPrimitives.ReadUInt64BigEndian(t.AsSpan(i * 8));
            if (e == 0 || (e & CompressedFlag) != 0) continue;
            long host = (long)(e & OffsetMask);
            if ((e & L2Reserved) != 0 || host % ClusterSize != 0 || host >= length)
                throw new Qcow2FormatException($"qcow2 image '{Path}': L2 table at {at}, entry {i} (0x{e:x}) points outside the file or is malformed");
        }
        _l2[at] = t;
        return t;
    }

    /// <summary>The decompressed guest cluster of compressed entry <paramref name="entry"/> (cached: the last one).</summary>
    private byte[] Inflate(ulong entry)
    {
        if ((long)entry == _inflatedFrom) return _inflated;
        var (offset, bytes) = CompressedRange(entry);
        var packed = new byte[bytes];
        _file.ReadFully(packed, offset);
        // NOTE: qcow2.txt: compression type 0 (zlib) stores raw deflate data, no zlib header; type 1 (zstd) zstd frames;
        // either may end before the sectors do (the rest is ignored).
        using (Stream z = _header.CompressionType == 1
            ? new ZstdSharp.DecompressionStream(new MemoryStream(packed))
            : new System.IO.Compression.DeflateStream(new MemoryStream(packed), System.IO.Compression.CompressionMode.Decompress))
        {
            int got = 0;
            try
            {
                while (got < _inflated.Length)
                {
                    int n = z.Read(_inflated, got, _inflated.Length - got);
                    if (n == 0) break;
                    got += n;
                }
            }
            catch (Exception ex) when (ex is InvalidDataException or ZstdSharp.ZstdException) { throw new Qcow2FormatException($"qcow2 image '{Path}': compressed cluster at {offset} is corrupt: {ex.Message}"); }
            if (got != _inflated.Length) throw new Qcow2FormatException($"qcow2 image '{Path}': compressed cluster at {offset} inflates to {got} bytes, not {_inflated.Length}");
        }
        _inflatedFrom = (long)entry;
        return _inflated;
    }

    /// <summary>The host byte range of a compressed cluster descriptor: from the sector holding its offset, whole sectors.</summary>
    internal (long Offset, int Bytes) CompressedRange(ulong entry)
    {
        // NOTE: qcow2.txt: x = 62 - (cluster_bits - 8); bits 0..x-1 host offset, bits x..61 additional 512-byte sectors.
        int x = 62 - (ClusterBits - 8);
        long offset = (long)(entry & ((1UL << x) - 1));
        long sectors = (long)((entry >> x) & ((1UL << (ClusterBits - 8)) - 1)) + 1;
        return (offset, (int)(sectors * 512 - (offset & 511)));
    }

    /// <inheritdoc cref="IDisposable.Dispose"/>
    /// <remarks>Flushes a writable image first (errors while flushing are swallowed: the last durable state stays), then closes the chain.</remarks>
    public void Dispose()
    {
        if (_disposed) return;
        if (!ReadOnly) try { Flush(); } catch (IOException) { }
        _disposed = true;
        _file.Dispose();
        _backing?.Dispose();
    }
}
