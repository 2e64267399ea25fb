using System.Globalization;

namespace BlkTap.Chains;

/// <summary>Parses human sizes. Thread-safe.</summary>
public static class Sizes
{
    /// <summary>Parses "4096", "64K", "64M", "1G", "2T" (powers of 1024; a trailing "iB"/"B" is allowed).</summary>
    public static bool TryParse(string text, out long bytes)
    {
        bytes = 0;
        var t = text.Trim();
        if (t.EndsWith("iB", StringComparison.OrdinalIgnoreCase)) t = t[..^2];
        else if (t.EndsWith('B') || t.EndsWith('b')) t = t[..^1];
        long mult = 1;
        if (t.Length > 0)
        {
            switch (char.ToUpperInvariant(t[^1]))
            {
                case 'K': mult = 1L << 10; t = t[..^1]; break;
                case 'M': mult = 1L << 20; t = t[..^1]; break;
                case 'G': mult = 1L << 30; t = t[..^1]; break;
                case 'T': mult = 1L << 40; t = t[..^1]; break;
            }
        }
        if (!long.TryParse(t, NumberStyles.None, CultureInfo.InvariantCulture, out var n) || n < 0) return false;
        try { bytes = checked(n * mult); return true; }
        catch (OverflowException) { return false; }
    }
}
