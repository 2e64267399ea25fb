using System.Buffers.Binary;
using BlkTap.Storage;

namespace BlkTap.Examples.Qcow2;

/// <summary>
/// The refcount table and its refcount blocks (qcow2.txt, "Host cluster management"), cached in memory, and the
/// cluster allocator over them: a cluster is free when its refcount is 0. New blocks describe themselves when they
/// can; the table grows by moving to a larger run of free clusters (the header then points at it).
/// Changes stay in memory until <see cref="WriteBlocks"/>/<see cref="WriteTable"/>; frees are deferred
/// (<see cref="FreeLater"/>) until the caller has made the L2 entries that dropped them durable.
/// </summary>
/// <remarks>Threading: not thread-safe; one owner (the image, on the loop thread).</remarks>
internal sealed class Qcow2Refcounts
{
    private readonly IStorageFile _file;
    private readonly int _cs, _order, _perBlock;
    private readonly Dictionary<long, byte[]> _blocks = [];
    private readonly HashSet<long> _dirtyBlocks = [];
    private readonly List<long> _pendingFrees = [];
    private long[] _table;
    private bool _tableDirty;
    private long _hint;

    public Qcow2Refcounts(IStorageFile file, Qcow2Header header, string path)
    {
        _file = file;
        _cs = header.ClusterSize;
        _order = header.RefcountOrder;
        _perBlock = _cs * 8 >> _order;
        TableOffset = header.RefcountTableOffset;
        TableClusters = header.RefcountTableClusters;
        var raw = new byte[(long)TableClusters * _cs];
        file.ReadFully(raw, TableOffset);
        _table = new long[raw.Length / 8];
        long length = file.Length;
        for (int i = 0; i < _table.Length; i++)
        {
            ulong e = BinaryPrimitives.ReadUInt64BigEndian(raw.AsSpan(i * 8));
            if (e == 0) continue;
            if ((e & 511) != 0 || (long)e % _cs != 0 || (long)e >= length)
                throw new Qcow2FormatException($"qcow2 image '{path}': refcount table entry {i} (0x{e:x}) points outside the file or is not cluster-aligned");
            _table[i] = (long)e;
        }
    }

    /// <summary>Where the table is now (moves when it grows).</summary>
    public long TableOffset { get; private set; }
    /// <summary>Its size in clusters.</summary>
    public int TableClusters { get; private set; }
    /// <summary>True once the table has moved and the header must be told (cleared by <see cref="WriteTable"/>'s caller).</summary>
    public bool TableMoved { get; set; }
    /// <summary>The largest refcount an entry holds.</summary>
    public ulong MaxRefcount => _order == 6 ? ulong.MaxValue : (1UL << (1 << _order)) - 1;
    /// <summary>Clusters freed but not yet decremented.</summary>
    public bool HasPendingFrees => _pendingFrees.Count > 0;

    /// <summary>The refcount of host cluster <paramref name="cluster"/> (0 where no block covers it).</summary>
    public ulong Get(long cluster)
    {
        long t = cluster / _perBlock;
        if (t >= _table.Length || _table[t] == 0) return 0;
        return Read(Block(_table[t]), (int)(cluster % _perBlock));
    }

    /// <summary>Sets the refcount of <paramref name="cluster"/>, creating its refcount block (and growing the table) when needed.</summary>
    public void Set(long cluster, ulong value)
    {
        long t = cluster / _perBlock;
        EnsureBlock(t);
        long at = _table[t];
        Write(Block(at), (int)(cluster % _perBlock), value);
        _dirtyBlocks.Add(at);
        if (value == 0 && cluster < _hint) _hint = cluster;
    }

    /// <summary>Allocates <paramref name="count"/> contiguous free clusters, sets their refcounts to 1, returns the first.</summary>
    public long Allocate(int count = 1)
    {
        while (true)
        {
            long c = FindFreeRun(_hint, count);
            for (long i = c; i < c + count; i++) EnsureBlock(i / _perBlock);
            if (FindFreeRun(c, count) != c) continue; // a new refcount block took one of them
            for (long i = c; i < c + count; i++) Set(i, 1);
            if (_hint == c || count == 1) _hint = c + count; // with one cluster, everything from the hint to c was in use
            return c;
        }
    }

    /// <summary>Decrements <paramref name="cluster"/>'s refcount at the next <see cref="ApplyPendingFrees"/> (after the L2 entries that dropped it are durable).</summary>
    public void FreeLater(long cluster) => _pendingFrees.Add(cluster);

    /// <summary>Applies the deferred decrements in memory; they become durable with the next <see cref="WriteBlocks"/>.</summary>
    public void ApplyPendingFrees()
    {
        foreach (long c in _pendingFrees)
        {
            ulong v = Get(c);
            if (v > 0) Set(c, v - 1);
        }
        _pendingFrees.Clear();
    }

    /// <summary>Writes the changed refcount blocks; returns whether anything was written.</summary>
    public bool WriteBlocks()
    {
        if (_dirtyBlocks.Count == 0) return false;
        foreach (long at in _dirtyBlocks) _file.Write(_blocks[at], at);
        _dirtyBlocks.Clear();
        return true;
    }

    /// <summary>Writes the table if an entry changed (new blocks, a move); returns whether anything was written.</summary>
    public bool WriteTable()
    {
        if (!_tableDirty) return false;
        var raw = new byte[(long)TableClusters * _cs];
        for (int i = 0; i < _table.Length; i++) BinaryPrimitives.WriteUInt64BigEndian(raw.AsSpan(i * 8), (ulong)_table[i]);
        _file.Write(raw, TableOffset);
        _tableDirty = false;
        return true;
    }

    /// <summary>Host offsets of every refcount block (for the checker).</summary>
    public IEnumerable<long> BlockOffsets => _table.Where(e => e != 0);

    private long FindFreeRun(long from, int count)
    {
        long c = from, run = 0;
        while (run < count)
        {
            if (Get(c + run) == 0) run++;
            else { c += run + 1; run = 0; }
        }
        return c;
    }

    private void EnsureBlock(long t)
    {
        if (t >= _table.Length) GrowTable(t);
        while (_table[t] == 0)
        {
            long b = FindFreeRun(_hint, 1);
            long tb = b / _perBlock;
            if (tb != t)
            {
                EnsureBlock(tb);
                if (Get(b) != 0 || _table[t] != 0) continue;
            }
            _blocks[b * _cs] = new byte[_cs];
            _table[t] = b * _cs;
            _tableDirty = true;
            _dirtyBlocks.Add(b * _cs);
            Set(b, 1);
        }
    }

    private void GrowTable(long needIndex)
    {
        int perCluster = _cs / 8;
        long entries = Math.Max(needIndex + 1 + perCluster, (long)_table.Length * 2);
        int clusters = (int)((entries + perCluster - 1) / perCluster);
        if ((long)clusters * _cs > 64L << 20) throw new IOException("qcow2 refcount table would exceed 64 MiB");
        var grown = new long[(long)clusters * perCluster];
        _table.CopyTo(grown, 0);
        long oldFirst = TableOffset / _cs;
        int oldClusters = TableClusters;
        _table = grown;
        _tableDirty = true;
        long first = Allocate(clusters);
        for (long c = oldFirst; c < oldFirst + oldClusters; c++) FreeLater(c);
        TableOffset = first * _cs;
        TableClusters = clusters;
        TableMoved = true;
    }

    private byte[] Block(long at)
    {
        if (_blocks.TryGetValue(at, out var b)) return b;
        b = new byte[_cs];
        _file.ReadFully(b, at);
        _blocks[at] = b;
        return b;
    }

    private ulong Read(byte[] block, int i) => ReadEntry(block, _order, i);

    /// <summary>Refcount entry <paramref name="i"/> of a refcount block with entries of 2^<paramref name="order"/> bits.</summary>
    internal static ulong ReadEntry(ReadOnlySpan<byte> block, int order, int i) => order switch
    {
        3 => block[i],
        4 => BinaryPrimitives.ReadUInt16BigEndian(block[(i * 2)..]),
        5 => BinaryPrimitives.ReadUInt32BigEndian(block[(i * 4)..]),
        6 => BinaryPrimitives.ReadUInt64BigEndian(block[(i * 8)..]),
        // NOTE: qcow2.txt: refcounts narrower than a byte are packed from the least significant bit of each byte.
        _ => (ulong)(block[i >> (3 - order)] >> ((i & ((8 >> order) - 1)) << order)) & ((1UL << (1 << order)) - 1),
    };

    private void Write(byte[] block, int i, ulong v)
    {
        if (v > MaxRefcount) throw new IOException($"qcow2 refcount overflow ({v} > {MaxRefcount})");
        switch (_order)
        {
            case 3: block[i] = (byte)v; break;
            case 4: BinaryPrimitives.WriteUInt16BigEndian(block.AsSpan(i * 2), (ushort)v); break;
            case 5: BinaryPrimitives.WriteUInt32BigEndian(block.AsSpan(i * 4), (uint)v); break;
            case 6: BinaryPrimitives.WriteUInt64BigEndian(block.AsSpan(i * 8), v); break;
            default:
                int bits = 1 << _order, shift = (i & ((8 >> _order) - 1)) << _order, mask = ((1 << bits) - 1) << shift;
                ref byte b = ref block[i >> (3 - _order)];
                b = (byte)((b & ~mask) | ((int)v << shift & mask));
                break;
        }
    }
}
