using System.Buffers.Binary;

namespace BlkTap.Examples.Qcow2;

public sealed partial class Qcow2Image
{
    /// <summary>
    /// Writes <paramref name="data"/> at <paramref name="offset"/> of the virtual disk. Allocated clusters are written in
    /// place; others get a new cluster holding what the guest saw there (backing, zeroes, decompressed) with the new
    /// data over it. The data is in the file when this returns; the metadata pointing at it is durable after <see cref="Flush"/>.
    /// </summary>
    public void WriteAt(long offset, ReadOnlySpan<byte> data)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (ReadOnly) throw new IOException($"qcow2 image '{Path}' is open read-only");
        CheckRange(offset, data.Length);
        while (!data.IsEmpty)
        {
            int intra = (int)(offset & (ClusterSize - 1));
            int n = Math.Min(data.Length, ClusterSize - intra);
            // Zeroes (what NBD WRITE_ZEROES and guests zeroing a disk send) never cost a new cluster where a zero cluster does.
            if (data[..n].IndexOfAnyExcept((byte)0) < 0) ZeroInCluster(offset, n);
            else WriteInCluster(offset, data[..n], zero: false);
            data = data[n..];
            offset += n;
        }
    }

    /// <summary>
    /// Makes <paramref name="length"/> bytes at <paramref name="offset"/> read as zeroes, as a write of zeroes would, at
    /// the least cost: allocated clusters of this image are written in place; other whole clusters become zero clusters
    /// (version 3; unallocated clusters without a backing file) instead of getting a host cluster; partial clusters
    /// that already read as zeroes are left alone. (<see cref="WriteAt"/> takes this path for every all-zero cluster.)
    /// </summary>
    public void WriteZeroes(long offset, long length) => ZeroRange(offset, length, discard: false);

    private void ZeroInCluster(long offset, int n)
    {
        if (CanDropWholeCluster(n))
        {
            ulong entry = Lookup(offset >> ClusterBits);
            bool inPlace = (entry & (CompressedFlag | ZeroFlag)) == 0 && (entry & CopiedFlag) != 0 && (entry & OffsetMask) != 0;
            if (!inPlace) { DropCluster(offset >> ClusterBits); return; }
        }
        WriteInCluster(offset, _zeroes.AsSpan(0, n), zero: true);
    }

    /// <summary>
    /// Discards <paramref name="length"/> bytes at <paramref name="offset"/>: afterwards they read as zeroes. Whole
    /// clusters lose their host cluster (unallocated without a backing file, a zero cluster with one); partial
    /// clusters are written with zeroes.
    /// </summary>
    public void Discard(long offset, long length) => ZeroRange(offset, length, discard: true);

    /// <summary>The cluster-by-cluster walk shared by <see cref="WriteZeroes"/> and <see cref="Discard"/>.</summary>
    private void ZeroRange(long offset, long length, bool discard)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (ReadOnly) throw new IOException($"qcow2 image '{Path}' is open read-only");
        CheckRange(offset, length);
        while (length > 0)
        {
            int intra = (int)(offset & (ClusterSize - 1));
            int n = (int)Math.Min(length, ClusterSize - intra);
            if (discard) DiscardInCluster(offset, n);
            else ZeroInCluster(offset, n);
            length -= n;
            offset += n;
        }
    }

    private void DiscardInCluster(long offset, int n)
    {
        if (CanDropWholeCluster(n)) DropCluster(offset >> ClusterBits);
        else WriteInCluster(offset, _zeroes.AsSpan(0, n), zero: true);
    }

    /// <summary>
    /// Whether <paramref name="n"/> bytes are a whole cluster that can lose its host cluster: it then reads as zeroes
    /// either unallocated (no backing file) or as a zero cluster (version 3); a v2 image over a backing file cannot say it.
    /// </summary>
    private bool CanDropWholeCluster(int n) => n == ClusterSize && (_backing == null || _header.Version >= 3);

    private byte[] _zeroes => _zeroCluster ??= new byte[ClusterSize];
    private byte[]? _zeroCluster;

    private void CheckRange(long offset, long length)
    {
        if (offset < 0 || length < 0 || offset > Size || length > Size - offset)
            throw new ArgumentOutOfRangeException(nameof(offset), $"bytes {offset}+{length} are outside the {Size}-byte disk of '{Path}'");
    }

    private void WriteInCluster(long offset, ReadOnlySpan<byte> data, bool zero)
    {
        long gc = offset >> ClusterBits;
        int intra = (int)(offset & (ClusterSize - 1));
        ulong entry = Lookup(gc);
        long host = (long)(entry & OffsetMask);
        bool compressed = (entry & CompressedFlag) != 0;
        if (!compressed && host != 0 && (entry & CopiedFlag) != 0 && (entry & ZeroFlag) == 0)
        {
            _file.Write(data, host + intra); // allocated, ours alone: in place
            return;
        }
        if (zero && !compressed && host == 0 && ((entry & ZeroFlag) != 0 && _header.Version >= 3 || _backing == null)) return; // reads as zeroes already
        // A new cluster: what the guest sees there now, with the new data over it.
        long fresh = _refcounts!.Allocate() * ClusterSize;
        bool seesZeroes = !compressed && host == 0 && ((entry & ZeroFlag) != 0 && _header.Version >= 3 || _backing == null);
        if (seesZeroes && data.Length < ClusterSize && fresh >= _file.Length)
        {
            // Past the end of the file: it reads as zeroes already once the file is extended (sparsely), so only the new
            // data is written instead of a whole cluster of zeroes around it.
            _file.SetLength(fresh + ClusterSize);
            _file.Write(data, fresh + intra);
        }
        else
        {
            var cluster = _cluster.AsSpan();
            if (data.Length < ClusterSize) ReadInCluster(gc << ClusterBits, entry, cluster);
            data.CopyTo(cluster[intra..]);
            _file.Write(cluster, fresh);
        }
        var table = L2TableFor(gc, create: true)!;
        SetL2(table, gc, (ulong)fresh | CopiedFlag);
        FreeHost(entry);
    }

    /// <summary>Makes guest cluster <paramref name="gc"/> read as zeroes without a host cluster, freeing the one it had.</summary>
    private void DropCluster(long gc)
    {
        ulong entry = Lookup(gc);
        ulong wanted = _backing != null ? ZeroFlag : 0;
        if (entry == wanted) return;
        var table = L2TableFor(gc, create: _backing != null);
        if (table == null) return; // no L2 table and no backing: zeroes already
        SetL2(table, gc, wanted);
        FreeHost(entry);
    }

    /// <summary>Schedules the host clusters <paramref name="entry"/> used for a refcount decrement after the next L2 write.</summary>
    private void FreeHost(ulong entry)
    {
        if ((entry & CompressedFlag) != 0)
        {
            var (offset, bytes) = CompressedRange(entry);
            long start = offset & ~511L;
            long end = start + ((bytes + (offset & 511) + 511) & ~511L);
            for (long c = start / ClusterSize; c <= (end - 1) / ClusterSize; c++) _refcounts!.FreeLater(c);
            if ((long)entry == _inflatedFrom) _inflatedFrom = -1;
            return;
        }
        long host = (long)(entry & OffsetMask);
        if (host != 0) _refcounts!.FreeLater(host / ClusterSize);
    }

    private byte[]? L2TableFor(long gc, bool create)
    {
        long l1i = gc / L2Entries;
        long at = (long)((ulong)_l1[l1i] & OffsetMask);
        if (at != 0)
        {
            var t = L2Table(at);
            if (((ulong)_l1[l1i] & CopiedFlag) != 0) return t;
            // Shared L2 table (refcount > 1 without snapshots means a foreign image): give this disk its own copy.
            long own = _refcounts!.Allocate() * ClusterSize;
            var copy = (byte[])t.Clone();
            _l2[own] = copy;
            _dirtyL2.Add(own);
            _refcounts.FreeLater(at / ClusterSize);
            _l1[l1i] = own | unchecked((long)CopiedFlag);
            _l1Dirty = true;
            return copy;
        }
        if (!create) return null;
        long fresh = _refcounts!.Allocate() * ClusterSize;
        var table = new byte[ClusterSize];
        _l2[fresh] = table;
        _dirtyL2.Add(fresh);
        _l1[l1i] = fresh | unchecked((long)CopiedFlag);
        _l1Dirty = true;
        return table;
    }

    private void SetL2(byte[] table, long gc, ulong entry)
    {
        BinaryPrimitives.WriteUInt64BigEndian(table.AsSpan((int)(gc % L2Entries) * 8), entry);
        _dirtyL2.Add((long)((ulong)_l1[gc / L2Entries] & OffsetMask));
    }

    /// <summary>
    /// Makes every write and discard so far durable, in an order that leaves a consistent image (at worst leaked
    /// clusters) after a power cut at any point: data; refcount blocks (increments); the refcount table; the header
    /// when the table moved; L2 tables; L1; then the decrements of clusters no entry uses any more.
    /// </summary>
    public void Flush()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (ReadOnly) return;
        var rc = _refcounts!;
        _file.Flush(); // data before anything that points at it
        if (rc.WriteBlocks()) _file.Flush(); // blocks before the table entries naming them
        if (rc.WriteTable()) _file.Flush();
        if (rc.TableMoved)
        {
            Span<byte> twelve = stackalloc byte[12];
            _header.RefcountTableOffset = rc.TableOffset;
            _header.RefcountTableClusters = rc.TableClusters;
            _header.WriteRefcountTableLocation(twelve);
            // NOTE: qcow2.txt header bytes 48..59: refcount_table_offset and refcount_table_clusters, one sector: atomic.
            _file.Write(twelve, 48);
            _file.Flush();
            rc.TableMoved = false;
        }
        if (_dirtyL2.Count > 0)
        {
            foreach (long at in _dirtyL2) _file.Write(_l2[at], at);
            _dirtyL2.Clear();
            _file.Flush(); // L2 tables before the L1 entries naming them
        }
        if (_l1Dirty)
        {
            var raw = new byte[_l1.Length * 8];
            for (int i = 0; i < _l1.Length; i++) BinaryPrimitives.WriteUInt64BigEndian(raw.AsSpan(i * 8), (ulong)_l1[i]);
            _file.Write(raw, _header.L1Offset);
            _l1Dirty = false;
            _file.Flush();
        }
        if (rc.HasPendingFrees)
        {
            rc.ApplyPendingFrees(); // only now: no durable entry names those clusters, so they may be reused
            if (rc.WriteBlocks()) _file.Flush();
        }
    }
}
