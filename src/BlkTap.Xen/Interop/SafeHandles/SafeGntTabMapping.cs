using System.Runtime.InteropServices;

namespace BlkTap.Xen.Interop;

/// <summary>
/// Pages mapped by xengnttab_map_domain_grant_refs; released with xengnttab_unmap. Keeps the gnttab handle
/// alive (AddRef) until the mapping is gone.
/// </summary>
internal sealed class SafeGntTabMapping : SafeHandle
{
    private readonly SafeGntTabHandle _owner;

    /// <summary>Takes ownership of <paramref name="count"/> pages at <paramref name="address"/>.</summary>
    public SafeGntTabMapping(SafeGntTabHandle owner, nint address, uint count) : base(0, ownsHandle: true)
    {
        bool added = false;
        owner.DangerousAddRef(ref added);
        _owner = owner;
        Count = count;
        SetHandle(address);
    }

    /// <summary>The number of 4096-byte pages.</summary>
    public uint Count { get; }

    /// <summary>The first page's address.</summary>
    public nint Address => handle;

    /// <inheritdoc />
    public override bool IsInvalid => handle == 0;

    /// <inheritdoc />
    protected override bool ReleaseHandle()
    {
        var ok = GntTabLib.Unmap(_owner.DangerousGetHandle(), handle, Count) == 0;
        _owner.DangerousRelease();
        return ok;
    }
}
