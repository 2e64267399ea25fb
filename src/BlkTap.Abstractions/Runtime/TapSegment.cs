namespace BlkTap;

/// <summary>
/// One contiguous piece of a request's data: an address in mapped memory (a granted page, or a
/// transport's pinned buffer), its length and the disk sector it starts at.
/// </summary>
/// <param name="Address">First byte (already offset by first_sect * 512 for ring requests).</param>
/// <param name="Length">Bytes (a multiple of 512).</param>
/// <param name="Sector">The disk sector of the first byte.</param>
public readonly record struct TapSegment(nint Address, int Length, ulong Sector)
{
    /// <summary>The bytes of this segment. Valid until the request completes.</summary>
    public unsafe Span<byte> Span => new((void*)Address, Length);
}
