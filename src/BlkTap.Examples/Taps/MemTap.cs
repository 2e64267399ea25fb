using BlkTap.Chains;
using BlkTap.Linux.Memory;

namespace BlkTap.Examples;

/// <summary>
/// <c>mem</c>: an in-memory terminator (sparse, so large sizes cost only what is written; each 2 MiB written is one
/// transparent huge page, <see cref="HugePageChunkAllocator"/>). Every
/// session shares one disk unless <c>shared=false</c>, which gives each session its own.
/// </summary>
public sealed class MemTapFactory : ITapFactory
{
    /// <inheritdoc/>
    public string Name => "mem";
    /// <inheritdoc/>
    public string Description => "in-memory disk (the demo's default terminator)";
    /// <inheritdoc/>
    public bool IsTerminator => true;
    /// <inheritdoc/>
    public IReadOnlyList<TapOptionInfo> Options { get; } =
    [
        new("size", "disk size, e.g. 64M or 1G (default 64M)"),
        new("shared", "one disk for all sessions (default true) or one per session (false)"),
        new("readonly", "refuse writes (default false)"),
    ];

    /// <inheritdoc/>
    public ITap Create(TapSpec spec, TapContext context)
    {
        long size = spec.GetSize("size", 64L << 20);
        if (size < BlkifConstants.SectorSize || size % BlkifConstants.SectorSize != 0)
            throw new ChainSpecException($"tap 'mem': size={spec.Get("size")} must be a positive multiple of 512 bytes");
        return new MemTap(size, spec.GetBool("shared", true), spec.GetBool("readonly", false));
    }
}

/// <summary>The <c>mem</c> tap. Loop thread only (hook rules).</summary>
public sealed class MemTap : TapBase, IRequestHook, IControlHook
{
    private readonly BlockDeviceHook _hook;
    private readonly List<MemoryBlockDevice> _devices = new();

    /// <summary>Creates the tap.</summary>
    public MemTap(long size, bool shared, bool readOnly) : base("mem")
    {
        if (shared)
        {
            var one = new MemoryBlockDevice(size, readOnly, HugePageChunkAllocator.Shared);
            _devices.Add(one);
            _hook = new BlockDeviceHook(one);
        }
        else
        {
            _hook = new BlockDeviceHook(_ =>
            {
                var d = new MemoryBlockDevice(size, readOnly, HugePageChunkAllocator.Shared);
                _devices.Add(d);
                return d;
            });
        }
    }

    /// <inheritdoc/>
    public HookResult OnRequest(TapRequest request) => _hook.OnRequest(request);
    /// <inheritdoc/>
    public void OnControl(ControlEvent controlEvent) => _hook.OnControl(controlEvent);

    /// <summary>Releases the disks' memory (their chunks go back to the system).</summary>
    public override void Dispose()
    {
        foreach (var d in _devices) d.Dispose();
        base.Dispose();
    }
}
