using BlkTap;
using BlkTap.Chains;

namespace GuardTap;

/// <summary><c>guard:sectors=N</c>: refuses (ERROR) every write and discard that touches the first N sectors.</summary>
public sealed class GuardTapFactory : ITapFactory
{
    /// <inheritdoc/>
    public string Name => "guard";
    /// <inheritdoc/>
    public string Description => "refuse writes and discards to the first sectors (sample plugin)";
    /// <inheritdoc/>
    public bool IsTerminator => false;
    /// <inheritdoc/>
    public IReadOnlyList<TapOptionInfo> Options { get; } = [new("sectors", "how many sectors from 0 to guard (default 8: a boot sector and its neighbours)")];

    /// <inheritdoc/>
    public ITap Create(TapSpec spec, TapContext context)
    {
        string text = spec.Get("sectors") ?? "8";
        if (!ulong.TryParse(text, out ulong sectors))
            throw new ChainSpecException($"guard: sectors={text} is not a number of sectors");
        return new GuardTap(sectors);
    }
}

/// <summary>The <c>guard</c> tap. Hooks run on the loop thread; <see cref="Refused"/> may be read from any thread.</summary>
public sealed class GuardTap(ulong guardedSectors) : TapBase("guard"), IRequestHook
{
    private long _refused;

    /// <summary>The sectors guarded, from 0.</summary>
    public ulong GuardedSectors { get; } = guardedSectors;

    /// <summary>Requests refused so far.</summary>
    public long Refused => Interlocked.Read(ref _refused);

    /// <inheritdoc/>
    public HookResult OnRequest(TapRequest request)
    {
        // Anything but a read that carries sectors changes them: write, barrier write, discard, a flush with data.
        bool changes = request.Operation != BlkifOperation.Read && request.SectorCount > 0;
        if (!changes || request.Sector >= GuardedSectors) return HookResult.Pass;
        Interlocked.Increment(ref _refused);
        request.Status = BlkifStatus.Error;
        return HookResult.Respond;
    }
}
