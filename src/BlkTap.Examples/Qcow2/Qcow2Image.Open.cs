using System.Buffers.Binary;
using BlkTap.Storage;

namespace BlkTap.Examples.Qcow2;

public sealed partial class Qcow2Image
{
    /// <summary>
    /// Opens the qcow2 image at <paramref name="path"/> on <paramref name="storage"/> (null: the OS's files), writable
    /// or read-only, and its backing chain read-only. Nothing is written to a refused image.
    /// </summary>
    /// <exception cref="Qcow2FormatException">The image or an image of its chain is bad, unsupported or missing, or the chain loops.</exception>
    public static Qcow2Image Open(string path, bool writable, IStorageProvider? storage = null) =>
        Open(path, writable, TapStorage.OrDefault(storage), []);

    private static Qcow2Image Open(string path, bool writable, IStorageProvider storage, List<string> chain)
    {
        string full = System.IO.Path.GetFullPath(path);
        if (chain.Contains(full)) throw new Qcow2FormatException($"qcow2 image '{chain[0]}': backing chain loops: {string.Join(" -> ", chain)} -> {full}");
        chain.Add(full);
        if (!storage.FileExists(path)) throw new Qcow2FormatException($"qcow2 image '{path}' does not exist");
        IStorageFile file;
        try { file = storage.Open(path, writable ? StorageOpenOptions.Writable | StorageOpenOptions.Exclusive : StorageOpenOptions.None); }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new Qcow2FormatException($"qcow2 image '{path}' cannot be opened{(writable ? " for writing (in use?)" : "")}: {ex.Message}");
        }
        IQcow2Backing? backing = null;
        try
        {
            long length = file.Length;
            var first = new byte[Math.Min(length, 1L << Qcow2Header.MaxClusterBits)];
            file.ReadFully(first, 0);
            var header = Qcow2Header.Parse(first, length, path);
            if (writable) RefuseWriting(header, path);
            var l1 = ReadL1(file, header, length, path);
            backing = OpenBacking(header, full, storage, chain);
            var image = new Qcow2Image(path, file, header, backing, l1, writable);
            if (writable && header.Autoclear != 0)
            {
                // NOTE: qcow2.txt: a writer that does not maintain what an autoclear bit promises (bitmaps) clears the bit.
                header.Autoclear = 0;
                Span<byte> eight = stackalloc byte[8];
                header.WriteAutoclear(eight);
                file.Write(eight, 88);
                file.Flush();
            }
            return image;
        }
        catch
        {
            backing?.Dispose();
            file.Dispose();
            throw;
        }
    }

    private static void RefuseWriting(Qcow2Header h, string path)
    {
        string? why = (h.Incompatible & Qcow2Header.IncompatCorrupt) != 0 ? "it is marked corrupt (incompatible feature bit 1): repair it with qemu-img check -r all"
            : (h.Incompatible & Qcow2Header.IncompatDirty) != 0 ? "its refcounts are dirty (lazy refcounts, incompatible feature bit 0): repair it with qemu-img check -r all"
            : h.SnapshotCount != 0 ? $"it has {h.SnapshotCount} internal snapshots (writing those is not supported yet)"
            : null;
        if (why != null) throw new Qcow2FormatException($"qcow2 image '{path}' cannot be opened for writing: {why}");
    }

    private static long[] ReadL1(IStorageFile file, Qcow2Header header, long length, string path)
    {
        var raw = new byte[(long)header.L1Size * 8];
        file.ReadFully(raw, header.L1Offset);
        var l1 = new long[header.L1Size];
        for (int i = 0; i < l1.Length; i++)
        {
            ulong e = BinaryPrimitives.ReadUInt64BigEndian(raw.AsSpan(i * 8));
            long at = (long)(e & OffsetMask);
            if ((e & L1Reserved) != 0 || at % header.ClusterSize != 0 || at >= length || (at == 0 && e != 0))
                throw new Qcow2FormatException($"qcow2 image '{path}': L1 entry {i} (0x{e:x}) points outside the file or is malformed");
            l1[i] = (long)e;
        }
        return l1;
    }

    private static IQcow2Backing? OpenBacking(Qcow2Header header, string imageFull, IStorageProvider storage, List<string> chain)
    {
        if (header.BackingFile == null) return null;
        string name = header.BackingFile;
        string resolved = System.IO.Path.IsPathRooted(name) ? name : System.IO.Path.Combine(System.IO.Path.GetDirectoryName(imageFull)!, name);
        if (!storage.FileExists(resolved)) throw new Qcow2FormatException($"qcow2 image '{chain[0]}': backing file '{name}' does not exist");
        string? format = header.BackingFormat;
        if (format == null)
        {
            // No backing format extension: probe the magic, as qemu does for images made without -F.
            using var probe = storage.Open(resolved, StorageOpenOptions.None);
            Span<byte> magic = stackalloc byte[4];
            format = probe.ReadFully(magic, 0) == 4 && BinaryPrimitives.ReadUInt32BigEndian(magic) == Qcow2Header.Magic ? "qcow2" : "raw";
        }
        switch (format)
        {
            case "qcow2":
                return Open(resolved, writable: false, storage, chain);
            case "raw":
                try { return new RawBacking(storage.Open(resolved, StorageOpenOptions.None)); }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
                {
                    throw new Qcow2FormatException($"qcow2 image '{chain[0]}': backing file '{name}' cannot be opened: {ex.Message}");
                }
            default:
                throw new Qcow2FormatException($"qcow2 image '{chain[0]}': backing format '{format}' is not supported (raw and qcow2 are)");
        }
    }
}
