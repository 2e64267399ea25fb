using System.Numerics;

namespace BlkTap.Examples.Internal;

/// <summary>
/// One bit per 512-byte sector (bit s is byte s/8, bit s%8, LSB first), as stored in the overlay's map,
/// with the 4 KiB map pages touched since the last <see cref="ClearDirty"/>. Not thread-safe.
/// </summary>
internal sealed class SectorBitmap
{
    private readonly byte[] _bits;
    private readonly bool[] _dirty;
    private readonly List<int> _dirtyPages = new();

    public SectorBitmap(long mapLength, ulong sectors)
    {
        _bits = new byte[checked((int)mapLength)];
        _dirty = new bool[(int)(mapLength / CowHeader.MapPage)];
        Sectors = sectors;
    }

    public ulong Sectors { get; }

    /// <summary>The raw map (exactly the on-disk bytes).</summary>
    public Span<byte> Bytes => _bits;

    public bool IsSet(ulong sector) => (_bits[(int)(sector >> 3)] & (1 << (int)(sector & 7))) != 0;

    /// <summary>Set sectors in [sector, sector+count).</summary>
    public ulong CountSet(ulong sector, ulong count)
    {
        ulong n = 0, end = sector + count;
        while (sector < end)
        {
            if ((sector & 7) == 0 && end - sector >= 8)
            {
                n += (ulong)BitOperations.PopCount(_bits[(int)(sector >> 3)]);
                sector += 8;
            }
            else
            {
                if (IsSet(sector)) n++;
                sector++;
            }
        }
        return n;
    }

    /// <summary>Length of the run starting at <paramref name="sector"/> whose bits all equal <paramref name="set"/>, at most <paramref name="max"/>.</summary>
    public ulong Run(ulong sector, ulong max, bool set)
    {
        ulong n = 0;
        while (n < max && IsSet(sector + n) == set) n++;
        return n;
    }

    public void SetRange(ulong sector, ulong count)
    {
        for (ulong s = sector, end = sector + count; s < end; s++)
        {
            int i = (int)(s >> 3);
            _bits[i] |= (byte)(1 << (int)(s & 7));
            int page = i / CowHeader.MapPage;
            if (!_dirty[page]) { _dirty[page] = true; _dirtyPages.Add(page); }
        }
    }

    public ulong PopCount()
    {
        ulong n = 0;
        foreach (byte b in _bits) n += (ulong)BitOperations.PopCount(b);
        return n;
    }

    public void ClearAll()
    {
        Array.Clear(_bits);
        Array.Clear(_dirty);
        _dirtyPages.Clear();
    }

    public bool HasDirty => _dirtyPages.Count > 0;

    /// <summary>The dirty page indexes (valid until the next <see cref="ClearDirty"/>).</summary>
    public List<int> DirtyPages => _dirtyPages;

    public void ClearDirty()
    {
        foreach (int p in _dirtyPages) _dirty[p] = false;
        _dirtyPages.Clear();
    }
}
