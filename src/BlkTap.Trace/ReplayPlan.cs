using BlkTap.Chains;

namespace BlkTap.Trace;

/// <summary>
/// How a replay of a trace sets up its disk (what <c>blktap replay</c> decides before it starts the chain): the chain's
/// specs, with a bare <c>mem</c> terminator sized to the trace; whether every frontend reaches one disk; whether
/// sectors the trace never wrote must read as zeros.
/// </summary>
/// <remarks>
/// <para>Sizing: when the chain is just <c>mem</c> without <c>size=</c>, the disk gets the trace's highest sector
/// rounded up to 1 MiB, at least <see cref="MinimumAutoSize"/>; any other chain is left as it is.</para>
/// <para>Sharing, by the terminator's name: <c>mem</c> is shared unless <c>shared=false</c>, <c>img</c> only with
/// <c>path=</c> (without it each session opens its own image), anything else is taken as shared. Only a <c>mem</c>
/// disk starts out as zeros.</para>
/// <para>Threading: an immutable value; safe to share once built.</para>
/// </remarks>
public sealed class ReplayPlan
{
    /// <summary>The smallest size given to an automatically sized <c>mem</c> disk (64 MiB).</summary>
    public const long MinimumAutoSize = 64L << 20;

    private ReplayPlan(IReadOnlyList<TapSpec> specs, bool autoSized, long diskBytes, bool sharedDisk, bool initiallyZero)
    {
        Specs = specs;
        AutoSized = autoSized;
        DiskBytes = diskBytes;
        SharedDisk = sharedDisk;
        InitiallyZero = initiallyZero;
    }

    /// <summary>The chain to build, frontend side first (the given specs, the terminator maybe sized).</summary>
    public IReadOnlyList<TapSpec> Specs { get; }

    /// <summary>True when the <c>mem</c> terminator was sized to the trace (<see cref="DiskBytes"/>).</summary>
    public bool AutoSized { get; }

    /// <summary>The size given to the <c>mem</c> disk when <see cref="AutoSized"/>; 0 otherwise.</summary>
    public long DiskBytes { get; }

    /// <summary>Whether every frontend reaches the same disk (one verification model, overlapping requests of all frontends ordered).</summary>
    public bool SharedDisk { get; }

    /// <summary>Whether sectors never written by the trace must read as zeros (a fresh <c>mem</c> disk).</summary>
    public bool InitiallyZero { get; }

    /// <summary>Plans the replay of the trace <paramref name="summary"/> describes through the chain <paramref name="specs"/>.</summary>
    /// <exception cref="ChainSpecException">The terminator's <c>shared=</c> is not a boolean.</exception>
    public static ReplayPlan For(IReadOnlyList<TapSpec> specs, TraceSummary summary)
    {
        ArgumentNullException.ThrowIfNull(specs);
        ArgumentNullException.ThrowIfNull(summary);
        var planned = specs.ToList();
        bool autoSized = false;
        long diskBytes = 0;
        if (planned.Count == 1 && planned[0].Name == "mem" && !planned[0].Options.ContainsKey("size"))
        {
            diskBytes = Math.Max(MinimumAutoSize, (long)((summary.EndSector * 512 + (1UL << 20) - 1) & ~((1UL << 20) - 1)));
            planned[0] = TapSpec.Parse(planned[0].Text.Contains(':') ? $"{planned[0].Text},size={diskBytes}" : $"mem:size={diskBytes}");
            autoSized = true;
        }
        var terminator = planned.Count > 0 ? planned[^1] : null;
        bool sharedDisk = terminator?.Name switch
        {
            "mem" => terminator.GetBool("shared", true),
            "img" => terminator.Get("path") != null,
            _ => true,
        };
        return new ReplayPlan(planned, autoSized, diskBytes, sharedDisk, initiallyZero: terminator?.Name == "mem");
    }

    /// <summary>The smallest disk, in MiB (rounded up), that holds every sector of the trace <paramref name="summary"/> describes.</summary>
    public static ulong RequiredMebibytes(TraceSummary summary)
    {
        ArgumentNullException.ThrowIfNull(summary);
        return (summary.EndSector * 512 + (1UL << 20) - 1) >> 20;
    }
}
