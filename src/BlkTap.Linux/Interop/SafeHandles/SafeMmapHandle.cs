using System.Runtime.InteropServices;

namespace BlkTap.Linux.Interop;

/// <summary>An owned mmap(2) region; unmapped exactly once on dispose or finalization.</summary>
internal sealed class SafeMmapHandle : SafeHandle
{
    private SafeMmapHandle() : base(-1, ownsHandle: true) { }

    /// <summary>Takes ownership of the mapping at <paramref name="address"/>.</summary>
    public SafeMmapHandle(nint address, nuint length) : base(-1, ownsHandle: true)
    {
        SetHandle(address);
        Length = length;
    }

    /// <summary>A handle standing for MAP_FAILED.</summary>
    public static SafeMmapHandle Invalid() => new();

    /// <summary>The mapped length in bytes.</summary>
    public nuint Length { get; }

    /// <summary>The start address (valid only while the handle is alive).</summary>
    public nint Address => handle;

    /// <inheritdoc />
    // NOTE: MAP_FAILED is (void *)-1 (mmap(2)); address 0 is never returned for a non-MAP_FIXED map.
    public override bool IsInvalid => handle == -1 || handle == 0;

    /// <inheritdoc />
    protected override bool ReleaseHandle() => Libc.Munmap(handle, Length) == 0;
}
