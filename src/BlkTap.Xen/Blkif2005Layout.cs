namespace BlkTap.Xen;

/// <summary>
/// Byte layout of the 2005 <c>blkif_request_t</c> / <c>blkif_response_t</c> for one build of the kernel. The
/// structs hold <c>unsigned long</c> fields (id, frame_and_sects), so the 32-bit and 64-bit builds differ.
/// </summary>
/// <remarks>
/// <para>Immutable: thread-safe.</para>
/// <para>NOTE: blkif.h mid-2005, naturally aligned (no PACKED):
/// <c>{ u8 operation; u8 nr_segments; u16 device; unsigned long id; u64 sector_number; unsigned long
/// frame_and_sects[11]; }</c> and <c>{ unsigned long id; u8 operation; s16 status; }</c>. On i386 a u64 in a
/// struct is 4-aligned, which does not move sector_number (it follows a 4-byte id at 4).</para>
/// </remarks>
public sealed class Blkif2005Layout
{
    private Blkif2005Layout(string name, int word)
    {
        Name = name;
        WordSize = word;
        IdOffset = word;                        // after op, nr_segments, device (4 bytes), aligned to the word
        SectorOffset = IdOffset + word;         // 8 on i386 (4-aligned u64), 16 on x86_64
        FrameAndSectsOffset = SectorOffset + 8;
        RequestSize = FrameAndSectsOffset + Blkif2005.MaxSegmentsPerRequest * word;
        ResponseOperationOffset = word;
        ResponseStatusOffset = word + 2;        // s16 after a u8: aligned to 2
        ResponseSize = RoundUp(ResponseStatusOffset + 2, word);
        EntrySize = Math.Max(RequestSize, ResponseSize);
        RingEntries = Blkif2005.RingEntries(BlktapDeviceAbi.PageSize, EntrySize);
    }

    /// <summary>The 32-bit (i386) build: request 60 bytes, response 8, 64 ring entries.</summary>
    public static Blkif2005Layout X86_32 { get; } = new("x86_32", 4);

    /// <summary>The 64-bit (x86_64) build: request 112 bytes, response 16, 32 ring entries. The device path's layout.</summary>
    public static Blkif2005Layout X86_64 { get; } = new("x86_64", 8);

    /// <summary>"x86_32" or "x86_64".</summary>
    public string Name { get; }
    /// <summary>sizeof(unsigned long).</summary>
    public int WordSize { get; }
    /// <summary>Offset of the request's id (unsigned long). operation is @0, nr_segments @1, device (u16) @2.</summary>
    public int IdOffset { get; }
    /// <summary>Offset of sector_number (u64).</summary>
    public int SectorOffset { get; }
    /// <summary>Offset of frame_and_sects[0]; entry s is at this + s * <see cref="WordSize"/>.</summary>
    public int FrameAndSectsOffset { get; }
    /// <summary>sizeof(blkif_request_t).</summary>
    public int RequestSize { get; }
    /// <summary>Offset of the response's operation (u8); the id (unsigned long) is @0.</summary>
    public int ResponseOperationOffset { get; }
    /// <summary>Offset of the response's status (s16).</summary>
    public int ResponseStatusOffset { get; }
    /// <summary>sizeof(blkif_response_t).</summary>
    public int ResponseSize { get; }
    /// <summary>sizeof(union blkif_sring_entry).</summary>
    public int EntrySize { get; }
    /// <summary>Entries of a one-page 2005 blkif ring (<c>__RING_SIZE(sring, PAGE_SIZE)</c>).</summary>
    public uint RingEntries { get; }

    /// <inheritdoc/>
    public override string ToString() => Name;

    private static int RoundUp(int value, int to) => (value + to - 1) / to * to;
}
