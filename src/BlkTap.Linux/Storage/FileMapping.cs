using System.Numerics;
using BlkTap.Linux.Interop;
using BlkTap.Storage;
using Microsoft.Win32.SafeHandles;

namespace BlkTap.Linux.Storage;

/// <summary>
/// A shared mapping of a file in memory (tmpfs, ramfs) and which of its pages are known to hold data: copies through the
/// mapping for ranges whose every page does, nothing otherwise (the caller then makes its system call). Owned by
/// <see cref="LinuxStorageFile"/> (<see cref="IMappableStorageFile"/>).
/// </summary>
/// <remarks>
/// <para>
/// Why only pages known to hold data: on tmpfs a fault on a hole allocates a page, so a mapped read of a hole would fill
/// a sparse file, and a mapped write to a hole of a full file system raises SIGBUS where pwrite answers ENOSPC. A page is
/// known to hold data once a pwrite through the file has touched it (<see cref="MarkWritten"/>) or once a scan of its
/// 2 MiB chunk with lseek(SEEK_DATA/SEEK_HOLE) has found it; a punched page is forgotten (<see cref="Forget"/>) before and
/// after the punch. Scans run lazily, the first time a chunk is asked about; a run of data that reaches past the chunk
/// marks the chunks it covers whole as scanned too, so a dense file costs one scan.
/// </para>
/// <para>
/// Threading: every member from any thread, concurrently (bits are set and cleared with interlocked operations, the
/// per-GiB tables are created with one compare-and-swap); <see cref="Dispose"/> after the last copy. A copy and a
/// punch of the same pages at once is the caller's race, as with system calls; a scan at the same time as a punch of
/// other pages of its chunk can keep a punched page marked, which only means that page's next mapped touch allocates it
/// again (zeroes, as the hole read).
/// </para>
/// </remarks>
internal sealed unsafe class FileMapping : IDisposable
{
    private const int GroupShift = 30; // one table of bits per GiB of the file
    private const int ChunkShift = 21; // scanned 2 MiB at a time
    private readonly SafeFileHandle _file;
    private readonly SafeMmapHandle _map;
    private readonly byte* _base;
    private readonly long _mappedLength;
    private readonly int _pageShift;
    private readonly int _pagesPerGroupShift;
    private readonly Group?[] _groups;
    private long _length;
    private long _operations;

    private sealed class Group(int pageWords, int chunkWords)
    {
        public readonly ulong[] Present = new ulong[pageWords];
        public readonly ulong[] Scanned = new ulong[chunkWords];
    }

    private FileMapping(SafeFileHandle file, SafeMmapHandle map, long length)
    {
        _file = file;
        _map = map;
        _base = (byte*)map.Address;
        _mappedLength = length;
        _length = length;
        _pageShift = BitOperations.Log2((uint)Environment.SystemPageSize);
        _pagesPerGroupShift = GroupShift - _pageShift;
        _groups = new Group?[(int)((length + (1L << GroupShift) - 1) >> GroupShift)];
    }

    /// <summary>The most bytes mapped: half of x86-64's 128 TiB of user addresses.</summary>
    public const long MaxLength = 64L << 40;

    /// <summary>
    /// Maps <paramref name="length"/> bytes of <paramref name="file"/> shared (read-only when <paramref name="readOnly"/>),
    /// or returns null with the reason.
    /// </summary>
    public static FileMapping? Create(SafeFileHandle file, long length, bool readOnly, out string? unavailable)
    {
        if (length <= 0) { unavailable = null; return null; } // nothing to map: not offered
        if (length > MaxLength) { unavailable = $"the file is larger than {MaxLength >> 40} TiB"; return null; }
        int prot = readOnly ? Libc.PROT_READ : Libc.PROT_READ | Libc.PROT_WRITE;
        // NOTE: no MAP_POPULATE: on tmpfs populating a shared mapping faults in every hole, allocating the whole file.
        var map = Libc.Mmap((nuint)length, prot, Libc.MAP_SHARED, file, 0);
        if (map.IsInvalid)
        {
            unavailable = Errno.Message("mmap", Errno.Last, null);
            map.Dispose();
            return null;
        }
        unavailable = null;
        return new FileMapping(file, map, length);
    }

    /// <summary>Copies served through the mapping so far.</summary>
    public long Operations => Volatile.Read(ref _operations);

    /// <summary>Copies the bytes at <paramref name="offset"/> into <paramref name="buffer"/> when every page they lie in is known to hold data.</summary>
    public bool TryRead(Span<byte> buffer, long offset)
    {
        if (!Covers(offset, buffer.Length)) return false;
        fixed (byte* p = buffer) Buffer.MemoryCopy(_base + offset, p, buffer.Length, buffer.Length);
        Interlocked.Increment(ref _operations);
        return true;
    }

    /// <summary>Copies <paramref name="data"/> to <paramref name="offset"/> when every page it lies in is known to hold data.</summary>
    public bool TryWrite(ReadOnlySpan<byte> data, long offset)
    {
        if (!Covers(offset, data.Length)) return false;
        fixed (byte* p = data) Buffer.MemoryCopy(p, _base + offset, data.Length, data.Length);
        Interlocked.Increment(ref _operations);
        return true;
    }

    /// <summary>After a pwrite of <paramref name="length"/> bytes at <paramref name="offset"/>: its pages hold data now.</summary>
    public void MarkWritten(long offset, long length) => SetPages(offset, length, present: true);

    /// <summary>Before and after a punch of <paramref name="length"/> bytes at <paramref name="offset"/>: its pages are no longer known to hold data.</summary>
    public void Forget(long offset, long length) => SetPages(offset, length, present: false);

    /// <summary>
    /// Before the file is shortened to <paramref name="length"/> bytes: copies stop short of it (a copy past a file's end
    /// raises SIGBUS). Growing the file changes nothing: the mapping keeps its first length.
    /// </summary>
    public void Shorten(long length)
    {
        long current;
        do
        {
            current = Volatile.Read(ref _length);
            if (length >= current) return;
        }
        while (Interlocked.CompareExchange(ref _length, Math.Max(0, length), current) != current);
    }

    private bool Covers(long offset, int length)
    {
        if (length <= 0 || offset < 0 || offset + length > Volatile.Read(ref _length)) return false;
        long first = offset >> _pageShift, last = (offset + length - 1) >> _pageShift;
        if (AllPresent(first, last)) return true;
        // Ask the file about the chunks not scanned yet, then look again.
        bool scanned = false;
        for (long c = first >> (ChunkShift - _pageShift); c <= last >> (ChunkShift - _pageShift); c++)
            if (!IsScanned(c)) { Scan(c); scanned = true; }
        return scanned && AllPresent(first, last);
    }

    private bool AllPresent(long first, long last)
    {
        for (long page = first; page <= last;)
        {
            var group = _groups[page >> _pagesPerGroupShift];
            if (group == null) return false;
            int count = WordOf(page, last, out int word, out ulong mask);
            if ((Volatile.Read(ref group.Present[word]) & mask) != mask) return false;
            page += count;
        }
        return true;
    }

    private void SetPages(long offset, long length, bool present)
    {
        if (length <= 0 || offset < 0 || offset >= _mappedLength) return;
        long end = Math.Min(offset + length, _mappedLength);
        long first = offset >> _pageShift, last = (end - 1) >> _pageShift;
        for (long page = first; page <= last;)
        {
            int count = WordOf(page, last, out int word, out ulong mask);
            if (present) Interlocked.Or(ref GroupOf(page).Present[word], mask);
            else if (_groups[page >> _pagesPerGroupShift] is { } g) Interlocked.And(ref g.Present[word], ~mask);
            page += count;
        }
    }

    /// <summary>
    /// The word of <paramref name="page"/>'s group table that holds its bit, and the mask of the pages from it to
    /// <paramref name="last"/> that lie in that word; returns how many pages the mask covers.
    /// </summary>
    private int WordOf(long page, long last, out int word, out ulong mask)
    {
        long inGroup = page & ((1L << _pagesPerGroupShift) - 1);
        int bit = (int)(inGroup & 63);
        int count = (int)Math.Min(64 - bit, last - page + 1);
        word = (int)(inGroup >> 6);
        mask = (count == 64 ? ulong.MaxValue : ((1UL << count) - 1)) << bit;
        return count;
    }

    private Group GroupOf(long page)
    {
        long index = page >> _pagesPerGroupShift;
        var group = Volatile.Read(ref _groups[index]);
        if (group != null) return group;
        int pageWords = Math.Max(1, (1 << _pagesPerGroupShift) / 64);
        int chunkWords = Math.Max(1, (1 << (GroupShift - ChunkShift)) / 64);
        var fresh = new Group(pageWords, chunkWords);
        return Interlocked.CompareExchange(ref _groups[index], fresh, null) ?? fresh;
    }

    private bool IsScanned(long chunk)
    {
        var group = _groups[chunk >> (GroupShift - ChunkShift)];
        if (group == null) return false;
        long inGroup = chunk & ((1L << (GroupShift - ChunkShift)) - 1);
        return (Volatile.Read(ref group.Scanned[inGroup >> 6]) & (1UL << (int)(inGroup & 63))) != 0;
    }

    private void MarkScanned(long chunk)
    {
        long inGroup = chunk & ((1L << (GroupShift - ChunkShift)) - 1);
        Interlocked.Or(ref GroupOf(chunk << (ChunkShift - _pageShift)).Scanned[inGroup >> 6], 1UL << (int)(inGroup & 63));
    }

    /// <summary>Marks the data of chunk <paramref name="chunk"/> (and of the whole chunks a run of data reaching past it covers).</summary>
    private void Scan(long chunk)
    {
        long start = chunk << ChunkShift, end = Math.Min(start + (1L << ChunkShift), _mappedLength);
        for (long pos = start; pos < end;)
        {
            // NOTE: lseek(2): SEEK_DATA answers ENXIO when no data lies at or after pos; any other failure ends the scan
            // too (pages not marked are served by system calls, which is always correct).
            long data = Libc.Lseek(_file, pos, Libc.SEEK_DATA);
            if (data < 0 || data >= end) break;
            long hole = Libc.Lseek(_file, data, Libc.SEEK_HOLE);
            if (hole < 0) break;
            hole = Math.Min(hole, _mappedLength);
            SetPages(data, hole - data, present: true);
            // Whole chunks inside [data, hole) are known now, past this one too.
            long firstWhole = (data + (1L << ChunkShift) - 1) >> ChunkShift, pastWhole = hole >> ChunkShift;
            if (hole == _mappedLength) pastWhole = (hole + (1L << ChunkShift) - 1) >> ChunkShift;
            for (long c = Math.Max(firstWhole, chunk + 1); c < pastWhole; c++) MarkScanned(c);
            pos = hole;
        }
        MarkScanned(chunk);
    }

    /// <inheritdoc/>
    public void Dispose() => _map.Dispose();
}
