using System.Buffers.Binary;
using System.Text;
using BlkTap.Storage;

namespace BlkTap.Examples.Qcow2;

/// <summary>
/// Creates empty qcow2 version 3 images (16-bit refcounts, zlib compression type, no features set): cluster 0 the
/// header (with a backing format extension and the backing file name when there is one), then the refcount table,
/// its refcount blocks and the L1 table, each cluster counted once. Built under a temporary name, synced, renamed,
/// and the directory synced: a crash leaves no image or a complete one.
/// </summary>
/// <remarks>Threading: stateless; safe from any thread (for different paths).</remarks>
public static class Qcow2Creator
{
    /// <summary>The cluster size qemu-img uses when none is given.</summary>
    public const int DefaultClusterSize = 64 * 1024;

    /// <summary>
    /// Creates <paramref name="path"/>: a <paramref name="size"/>-byte disk (rounded up to whole sectors; null: the
    /// backing file's size) with <paramref name="clusterSize"/>-byte clusters over an optional backing file
    /// (<paramref name="backingFormat"/> "raw" or "qcow2"; null: probed). A relative backing name is relative to the
    /// new image's directory, as qemu reads it.
    /// </summary>
    /// <exception cref="Qcow2FormatException">Bad arguments, an existing file, or a backing file that cannot be used.</exception>
    public static void Create(string path, long? size, int clusterSize = DefaultClusterSize, string? backing = null, string? backingFormat = null, IStorageProvider? storage = null)
    {
        storage = TapStorage.OrDefault(storage);
        if (clusterSize < 512 || clusterSize > 2 << 20 || (clusterSize & (clusterSize - 1)) != 0)
            throw new Qcow2FormatException($"qcow2 image '{path}': cluster size {clusterSize} must be a power of two from 512 to 2M");
        if (storage.FileExists(path)) throw new Qcow2FormatException($"qcow2 image '{path}' already exists");
        string full = Path.GetFullPath(path);
        string? dir = Path.GetDirectoryName(full);
        if (dir == null || !storage.DirectoryExists(dir)) throw new Qcow2FormatException($"qcow2 image '{path}': directory '{dir}' does not exist");
        if (backingFormat is not (null or "raw" or "qcow2")) throw new Qcow2FormatException($"qcow2 image '{path}': backing format '{backingFormat}' is not supported (raw and qcow2 are)");
        if (backing != null) size ??= BackingSize(path, backing, backingFormat, dir, storage);
        if (size is not > 0) throw new Qcow2FormatException($"qcow2 image '{path}': a size above 0 is needed (or a backing file to take it from)");
        long bytes = (size.Value + 511) & ~511L;
        int bits = System.Numerics.BitOperations.Log2((uint)clusterSize);

        var image = Layout(bytes, bits, backing, backingFormat, path);
        string tmp = $"{full}.creating-{Environment.ProcessId}";
        try
        {
            using (var f = storage.Create(tmp))
            {
                f.SetLength(image.Length);
                f.Write(image.Cluster0, 0);
                f.Write(image.Metadata, clusterSize);
                f.Flush();
            }
            storage.Move(tmp, full);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            try { storage.Delete(tmp); } catch (IOException) { }
            throw new Qcow2FormatException($"qcow2 image '{path}' cannot be created: {ex.Message}");
        }
        storage.SyncDirectory(dir);
    }

    private static long BackingSize(string path, string backing, string? format, string dir, IStorageProvider storage)
    {
        string resolved = Path.IsPathRooted(backing) ? backing : Path.Combine(dir, backing);
        if (!storage.FileExists(resolved)) throw new Qcow2FormatException($"qcow2 image '{path}': backing file '{backing}' does not exist");
        if (format == "raw") { using var raw = storage.Open(resolved, StorageOpenOptions.None); return raw.Length; }
        try { using var q = Qcow2Image.Open(resolved, writable: false, storage); return q.Size; }
        catch (Qcow2FormatException) when (format == null) { using var raw = storage.Open(resolved, StorageOpenOptions.None); return raw.Length; }
    }

    private sealed record Image(byte[] Cluster0, byte[] Metadata, long Length);

    private static Image Layout(long size, int bits, string? backing, string? format, string path)
    {
        int cs = 1 << bits;
        long perBlock = cs * 8L / 16;
        long l1Entries = Qcow2Header.L1EntriesFor(size, bits);
        long l1Clusters = Math.Max(1, (l1Entries * 8 + cs - 1) / cs);
        long blocks = 1, table = 1;
        while (true)
        {
            long total = 1 + table + blocks + l1Clusters;
            long b = (total + perBlock - 1) / perBlock, t = (b * 8 + cs - 1) / cs;
            if (b == blocks && t == table) break;
            blocks = b;
            table = t;
        }
        long clusters = 1 + table + blocks + l1Clusters;
        if ((clusters - 1) * cs > 256L << 20) throw new Qcow2FormatException($"qcow2 image '{path}': {size} bytes with {cs}-byte clusters needs too much metadata; use larger clusters");
        var header = new Qcow2Header
        {
            Version = 3, ClusterBits = bits, Size = size, L1Size = (int)l1Entries, L1Offset = (1 + table + blocks) * cs,
            RefcountTableOffset = cs, RefcountTableClusters = (int)table, RefcountOrder = 4, HeaderLength = Qcow2Header.V3WrittenLength,
        };
        var c0 = new byte[cs];
        int at = Qcow2Header.V3WrittenLength;
        byte[]? name = null;
        if (backing != null)
        {
            // NOTE: qcow2.txt: header extension 0xE2792ACA names the backing file's format; the name itself sits after the extensions.
            var fmt = Encoding.UTF8.GetBytes(format ?? "raw");
            if (format != null)
            {
                BinaryPrimitives.WriteUInt32BigEndian(c0.AsSpan(at), Qcow2Header.ExtBackingFormat);
                BinaryPrimitives.WriteUInt32BigEndian(c0.AsSpan(at + 4), (uint)fmt.Length);
                fmt.CopyTo(c0, at + 8);
                at += 8 + ((fmt.Length + 7) & ~7);
            }
            name = Encoding.UTF8.GetBytes(backing);
            if (name.Length > 1023 || at + 8 + name.Length > cs) throw new Qcow2FormatException($"qcow2 image '{path}': backing file name '{backing}' is too long for the header");
        }
        at += 8; // end of extensions (type 0, length 0): already zero
        if (name != null) name.CopyTo(c0, at);
        header.WriteV3(c0, name != null ? at : 0, name?.Length ?? 0);

        var meta = new byte[(clusters - 1) * cs];
        for (long i = 0; i < blocks; i++) BinaryPrimitives.WriteUInt64BigEndian(meta.AsSpan((int)(i * 8)), (ulong)((1 + table + i) * cs));
        var refcounts = meta.AsSpan((int)(table * cs), (int)(blocks * cs));
        for (long c = 0; c < clusters; c++) BinaryPrimitives.WriteUInt16BigEndian(refcounts[(int)(c * 2)..], 1);
        return new Image(c0, meta, clusters * cs);
    }
}
