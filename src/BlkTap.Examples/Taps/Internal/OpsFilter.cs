using BlkTap.Chains;

namespace BlkTap.Examples;

/// <summary>Parses an <c>ops=</c> option into a set of operations a tap targets. Immutable; thread-safe.</summary>
internal readonly struct OpsFilter
{
    private readonly int _mask;

    private OpsFilter(int mask) => _mask = mask;

    /// <summary>Every data and control operation.</summary>
    public static OpsFilter All => new(Bit(BlkifOperation.Read) | Bit(BlkifOperation.Write) | Bit(BlkifOperation.WriteBarrier)
        | Bit(BlkifOperation.FlushDiskCache) | Bit(BlkifOperation.Discard));

    /// <summary>Whether <paramref name="op"/> is targeted.</summary>
    public bool Contains(BlkifOperation op) => (_mask & Bit(op)) != 0;

    private static int Bit(BlkifOperation op) => 1 << (int)op;

    /// <summary>
    /// Parses <c>read+write+flush+discard</c>. NOTE: TapSpec splits options on ',' (see TapSpec.cs), so
    /// a comma cannot appear inside a value on the command line; '+', '|' and '/' separate names instead
    /// (',' is accepted too for programmatic specs).
    /// </summary>
    public static OpsFilter Parse(string tap, string? text)
    {
        if (text == null) return All;
        int mask = 0;
        foreach (var raw in text.Split(['+', '|', '/', ','], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            mask |= raw.ToLowerInvariant() switch
            {
                "read" => Bit(BlkifOperation.Read),
                // A barrier write is a write for targeting purposes.
                "write" => Bit(BlkifOperation.Write) | Bit(BlkifOperation.WriteBarrier),
                "flush" => Bit(BlkifOperation.FlushDiskCache),
                "discard" or "trim" => Bit(BlkifOperation.Discard),
                _ => throw new ChainSpecException($"tap '{tap}': ops={text}: unknown operation '{raw}' (known: read, write, flush, discard; separate with '+')"),
            };
        }
        if (mask == 0) throw new ChainSpecException($"tap '{tap}': ops={text} names no operation (known: read, write, flush, discard)");
        return new OpsFilter(mask);
    }
}
