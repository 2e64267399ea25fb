using System.Buffers.Binary;
using BlkTap.Storage;

namespace BlkTap.Examples.Qcow2;

/// <summary>What <see cref="Qcow2Checker.Check"/> found: corruptions (each named) and leaked clusters.</summary>
/// <param name="Errors">One line per corruption: a refcount below the references to a cluster, an entry outside the file or malformed.</param>
/// <param name="LeakedClusters">Clusters whose refcount is above the references to them (space lost, data safe).</param>
/// <param name="Leaks">One line per leaked cluster (the first 100).</param>
public sealed record Qcow2CheckResult(IReadOnlyList<string> Errors, long LeakedClusters, IReadOnlyList<string> Leaks)
{
    /// <summary>True when nothing is wrong.</summary>
    public bool Clean => Errors.Count == 0 && LeakedClusters == 0;
}

/// <summary>
/// Checks a qcow2 image's metadata like <c>qemu-img check</c>: counts the references to every host cluster (header,
/// L1 table, refcount table and blocks, L2 tables, data and compressed clusters) and compares them with the stored
/// refcounts. Reads only.
/// </summary>
/// <remarks>Threading: stateless; safe from any thread. Images with internal snapshots are refused (not checked yet).</remarks>
public static class Qcow2Checker
{
    /// <summary>Checks <paramref name="path"/> on <paramref name="storage"/> (null: the OS's files).</summary>
    /// <exception cref="Qcow2FormatException">The image cannot be opened at all (its header is bad) or has internal snapshots.</exception>
    public static Qcow2CheckResult Check(string path, IStorageProvider? storage = null)
    {
        storage = TapStorage.OrDefault(storage);
        if (!storage.FileExists(path)) throw new Qcow2FormatException($"qcow2 image '{path}' does not exist");
        using var file = storage.Open(path, StorageOpenOptions.None);
        long length = file.Length;
        var first = new byte[Math.Min(length, 1L << Qcow2Header.MaxClusterBits)];
        file.ReadFully(first, 0);
        var h = Qcow2Header.Parse(first, length, path);
        if (h.SnapshotCount != 0) throw new Qcow2FormatException($"qcow2 image '{path}': checking images with internal snapshots is not supported yet");
        int cs = h.ClusterSize;
        long clusters = (length + cs - 1) / cs;
        var refs = new ulong[clusters];
        var errors = new List<string>();
        void Use(long offset, long bytes, string what)
        {
            if (offset % cs != 0 && what != "compressed data") { errors.Add($"{what} at {offset} is not cluster-aligned"); return; }
            for (long c = offset / cs; c <= (offset + bytes - 1) / cs; c++)
            {
                if (c >= clusters) { errors.Add($"{what} at {offset} lies outside the file ({length} bytes)"); return; }
                refs[c]++;
            }
        }
        Use(0, cs, "header");
        Use(h.L1Offset, Math.Max(1, (long)h.L1Size * 8), "L1 table");
        Use(h.RefcountTableOffset, (long)h.RefcountTableClusters * cs, "refcount table");
        var rt = new byte[(long)h.RefcountTableClusters * cs];
        file.ReadFully(rt, h.RefcountTableOffset);
        var blocks = new long[rt.Length / 8];
        for (int i = 0; i < blocks.Length; i++)
        {
            long e = (long)BinaryPrimitives.ReadUInt64BigEndian(rt.AsSpan(i * 8));
            if (e == 0) continue;
            if (e % cs != 0 || e >= length) { errors.Add($"refcount table entry {i} (0x{e:x}) points outside the file or is not cluster-aligned"); continue; }
            blocks[i] = e;
            Use(e, cs, "refcount block");
        }
        var copied = new List<(long Cluster, bool Flag, string What)>();
        CountL1(file, h, length, Use, errors, copied);

        int perBlock = cs * 8 >> h.RefcountOrder;
        var block = new byte[cs];
        long leaked = 0;
        var leaks = new List<string>();
        long lastBlock = -1;
        long covered = Math.Max(clusters, blocks.Length * (long)perBlock);
        for (long c = 0; c < covered; c++)
        {
            long t = c / perBlock;
            if (blocks[t] == 0) { if (c < clusters && refs[c] != 0) errors.Add($"cluster {c} is used {refs[c]} times but no refcount block covers it"); c = (t + 1) * perBlock - 1; continue; }
            if (t != lastBlock) { file.ReadFully(block, blocks[t]); lastBlock = t; }
            ulong stored = Qcow2Refcounts.ReadEntry(block, h.RefcountOrder, (int)(c % perBlock));
            ulong used = c < clusters ? refs[c] : 0;
            if (stored < used) errors.Add($"cluster {c}: refcount {stored}, but {used} references");
            else if (stored > used)
            {
                leaked++;
                if (leaks.Count < 100) leaks.Add($"cluster {c}: refcount {stored}, but {used} references (leaked)");
            }
        }
        // NOTE: qcow2.txt: the COPIED flag (bit 63 of L1 and standard L2 entries) is set exactly when the refcount is 1.
        foreach (var (c, flag, what) in copied)
        {
            long t = c / perBlock;
            if (c >= clusters || blocks[t] == 0) continue;
            file.ReadFully(block, blocks[t]);
            ulong stored = Qcow2Refcounts.ReadEntry(block, h.RefcountOrder, (int)(c % perBlock));
            if (flag != (stored == 1)) errors.Add($"{what}: COPIED flag {(flag ? "set" : "clear")} but refcount {stored}");
        }
        return new Qcow2CheckResult(errors, leaked, leaks);
    }

    private static void CountL1(IStorageFile file, Qcow2Header h, long length, Action<long, long, string> use, List<string> errors, List<(long, bool, string)> copied)
    {
        int cs = h.ClusterSize;
        var l1 = new byte[(long)h.L1Size * 8];
        file.ReadFully(l1, h.L1Offset);
        var l2 = new byte[cs];
        for (int i = 0; i < h.L1Size; i++)
        {
            ulong e = BinaryPrimitives.ReadUInt64BigEndian(l1.AsSpan(i * 8));
            long at = (long)(e & Qcow2Image.OffsetMask);
            if (at == 0) { if (e != 0) errors.Add($"L1 entry {i} (0x{e:x}) is malformed"); continue; }
            if (at >= length) { errors.Add($"L1 entry {i} (0x{e:x}) points outside the file"); continue; }
            use(at, cs, $"L2 table (L1 entry {i})");
            copied.Add((at / cs, (e & Qcow2Image.CopiedFlag) != 0, $"L2 table at {at} (L1 entry {i})"));
            file.ReadFully(l2, at);
            for (int j = 0; j < h.L2Entries; j++)
            {
                ulong d = BinaryPrimitives.ReadUInt64BigEndian(l2.AsSpan(j * 8));
                if ((d & Qcow2Image.CompressedFlag) != 0)
                {
                    int x = 62 - (h.ClusterBits - 8);
                    long offset = (long)(d & ((1UL << x) - 1));
                    long sectors = (long)((d >> x) & ((1UL << (h.ClusterBits - 8)) - 1)) + 1;
                    use(offset & ~511L, sectors * 512, "compressed data");
                    continue;
                }
                long host = (long)(d & Qcow2Image.OffsetMask);
                if (host == 0) continue;
                use(host, cs, $"data cluster (L2 table at {at}, entry {j})");
                copied.Add((host / cs, (d & Qcow2Image.CopiedFlag) != 0, $"data cluster at {host} (L2 table at {at}, entry {j})"));
            }
        }
    }
}
