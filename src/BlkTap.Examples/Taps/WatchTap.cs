using System.Buffers;
using System.Globalization;
using System.Text;
using BlkTap.Chains;

namespace BlkTap.Examples;

/// <summary>
/// <c>watch</c>: data-driven watchpoints. Fires when a write touches a sector range
/// (<c>sectors=START-END</c>, inclusive, 512-byte sectors) or writes data containing a byte string
/// (<c>pattern=HEX</c>, found anywhere in one request's data, across segment boundaries too).
/// Each hit logs a line, bumps <see cref="WatchTap.Hits"/> and raises <see cref="WatchTap.Hit"/>.
/// </summary>
public sealed class WatchTapFactory : ITapFactory
{
    /// <summary>Longest accepted pattern, in bytes.</summary>
    public const int MaxPatternLength = 4096;

    /// <inheritdoc/>
    public string Name => "watch";
    /// <inheritdoc/>
    public string Description => "watchpoints: report writes touching a sector range or containing a byte pattern";
    /// <inheritdoc/>
    public bool IsTerminator => false;
    /// <inheritdoc/>
    public IReadOnlyList<TapOptionInfo> Options { get; } =
    [
        new("sectors", "inclusive range of 512-byte sectors, START-END (e.g. 0-7)"),
        new("pattern", "byte string in hex (e.g. deadbeef) to look for in written data"),
        new("log", "append hit lines to this file instead of the run's output"),
    ];

    /// <inheritdoc/>
    public ITap Create(TapSpec spec, TapContext context)
    {
        var sectorsText = spec.Get("sectors");
        var patternText = spec.Get("pattern");
        if (sectorsText == null && patternText == null)
            throw new ChainSpecException("tap 'watch': nothing to watch: give sectors=START-END and/or pattern=HEX");
        WatchRange? range = null;
        if (sectorsText != null)
        {
            int dash = sectorsText.IndexOf('-');
            if (dash <= 0
                || !ulong.TryParse(sectorsText.AsSpan(0, dash), NumberStyles.None, CultureInfo.InvariantCulture, out ulong start)
                || !ulong.TryParse(sectorsText.AsSpan(dash + 1), NumberStyles.None, CultureInfo.InvariantCulture, out ulong end))
                throw new ChainSpecException($"tap 'watch': sectors={sectorsText} is not START-END (two sector numbers, inclusive)");
            if (end < start) throw new ChainSpecException($"tap 'watch': sectors={sectorsText}: END is before START");
            range = new WatchRange(start, end);
        }
        byte[]? pattern = null;
        if (patternText != null)
        {
            var hex = patternText.StartsWith("0x", StringComparison.OrdinalIgnoreCase) ? patternText[2..] : patternText;
            try { pattern = Convert.FromHexString(hex); }
            catch (FormatException) { throw new ChainSpecException($"tap 'watch': pattern={patternText} is not an even number of hex digits"); }
            if (pattern.Length == 0) throw new ChainSpecException("tap 'watch': pattern= is empty");
            if (pattern.Length > MaxPatternLength) throw new ChainSpecException($"tap 'watch': pattern is {pattern.Length} bytes; at most {MaxPatternLength}");
        }
        TextWriter output = context.Output;
        bool own = false;
        var log = spec.Get("log");
        if (log != null)
        {
            try { output = new StreamWriter(log, append: true, Encoding.UTF8) { AutoFlush = true }; own = true; }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
            { throw new ChainSpecException($"tap 'watch': cannot write log '{log}': {ex.Message}"); }
        }
        return new WatchTap(range, pattern, output, own);
    }
}

/// <summary>An inclusive range of 512-byte sectors.</summary>
/// <param name="First">First sector watched.</param>
/// <param name="Last">Last sector watched (inclusive).</param>
public readonly record struct WatchRange(ulong First, ulong Last)
{
    /// <summary>Whether <paramref name="count"/> sectors from <paramref name="sector"/> overlap the range.</summary>
    public bool Overlaps(ulong sector, ulong count) => count != 0 && sector <= Last && sector + (count - 1) >= First;
}

/// <summary>One watchpoint hit.</summary>
/// <param name="Session">The session (frontend) name.</param>
/// <param name="Sector">First sector of the write.</param>
/// <param name="SectorCount">Sectors written.</param>
/// <param name="RangeMatched">Whether the write touched the watched range.</param>
/// <param name="PatternOffset">Byte offset of the first pattern match in the write's data, or -1.</param>
public readonly record struct WatchHit(string Session, ulong Sector, ulong SectorCount, bool RangeMatched, long PatternOffset);

/// <summary>The <c>watch</c> tap.</summary>
/// <remarks>
/// Only writes (plain and barrier) are checked: reads, flushes and discards never fire. The check
/// runs in the request hook, so a hit is reported before the write reaches the disk (whatever its
/// eventual status). Threading: the hook, the log line and <see cref="Hit"/> handlers run on the loop
/// thread; handlers must be quick and must not block. <see cref="Hits"/> may be read from any thread.
/// </remarks>
public sealed class WatchTap : TapBase, IRequestHook
{
    private readonly WatchRange? _range;
    private readonly byte[]? _pattern;
    private readonly TextWriter _out;
    private readonly bool _own;
    private long _hits;

    /// <summary>Creates the tap; at least one of <paramref name="range"/> and <paramref name="pattern"/> must be given.</summary>
    public WatchTap(WatchRange? range, byte[]? pattern, TextWriter output, bool ownsOutput = false) : base("watch")
    {
        if (range == null && (pattern == null || pattern.Length == 0))
            throw new ArgumentException("a watch needs a sector range or a non-empty pattern");
        if (pattern is { Length: 0 }) throw new ArgumentException("empty pattern", nameof(pattern));
        _range = range;
        _pattern = pattern;
        _out = output;
        _own = ownsOutput;
    }

    /// <summary>Raised on every matching write (loop thread).</summary>
    public event Action<WatchHit>? Hit;

    /// <summary>Matching writes so far.</summary>
    public long Hits => Interlocked.Read(ref _hits);

    /// <inheritdoc/>
    public HookResult OnRequest(TapRequest request)
    {
        if (request.Operation is not (BlkifOperation.Write or BlkifOperation.WriteBarrier) || !request.HasData) return HookResult.Pass;
        bool inRange = _range is { } r && r.Overlaps(request.Sector, request.SectorCount);
        long offset = _pattern != null ? FindPattern(request, _pattern) : -1;
        if (!inRange && offset < 0) return HookResult.Pass;
        Interlocked.Increment(ref _hits);
        var hit = new WatchHit(request.Session.Name, request.Sector, request.SectorCount, inRange, offset);
        _out.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"watch: {hit.Session} write sector={hit.Sector}+{hit.SectorCount} bytes={request.ByteCount}{(inRange ? $" range={_range!.Value.First}-{_range.Value.Last}" : "")}{(offset >= 0 ? $" pattern@{offset}" : "")}"));
        Hit?.Invoke(hit);
        return HookResult.Pass;
    }

    /// <summary>
    /// Offset of the first occurrence of <paramref name="pattern"/> in the request's data, or -1.
    /// One segment is searched where it lies; several are first gathered into a pooled buffer so a
    /// match spanning segment boundaries is found.
    /// </summary>
    internal static long FindPattern(TapRequest request, ReadOnlySpan<byte> pattern)
    {
        if (request.ByteCount < pattern.Length) return -1;
        if (request.SegmentCount == 1) return request.SegmentData(0).IndexOf(pattern);
        var buffer = ArrayPool<byte>.Shared.Rent(request.ByteCount);
        try
        {
            var all = buffer.AsSpan(0, request.ByteCount);
            request.CopyDataTo(all);
            return all.IndexOf(pattern);
        }
        finally { ArrayPool<byte>.Shared.Return(buffer); }
    }

    /// <inheritdoc/>
    public override void Dispose()
    {
        _out.Flush();
        if (_own) _out.Dispose();
        base.Dispose();
    }
}
