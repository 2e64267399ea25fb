namespace BlkTap.Emulator.Internal;

/// <summary>
/// One ring of a <see cref="BlkFront"/> (Linux blkfront's <c>blkfront_ring_info</c>): its pages and grants, event
/// channel, shadows and free ids, and with persistent grants its pool of granted data pages.
/// </summary>
/// <remarks>Threading: touched only on the emulator's scheduler.</remarks>
internal sealed class BlkFrontQueue(int index, FrontRing ring, nint ringBase, uint[] ringRefs, EmulatedEventChannel channel, uint port)
{
    public int Index { get; } = index;
    public FrontRing Ring { get; } = ring;
    /// <summary>The ring's first page (0 once given back).</summary>
    public nint RingBase { get; set; } = ringBase;
    public uint[] RingRefs { get; } = ringRefs;
    public EmulatedEventChannel EventChannel { get; } = channel;
    public uint Port { get; } = port;
    public BlkFrontShadow[] Shadows { get; } = CreateShadows(ring.Size);
    public Stack<int> FreeIds { get; } = CreateIds(ring.Size);

    /// <summary>
    /// Persistently granted data pages not in use, last freed first.
    /// NOTE: blkif.h "feature-persistent" (frontend side) recommends a LIFO so that a backend keeping fewer
    /// grants than RING_SIZE * BLKIF_MAX_SEGMENTS_PER_REQUEST mapped still sees the same few reused.
    /// </summary>
    public Stack<(nint Page, uint Ref)> FreeGrants { get; } = new();

    /// <summary>Every persistently granted page of this ring (given back at teardown).</summary>
    public List<(nint Page, uint Ref)> AllGrants { get; } = new();

    /// <summary>Requests were placed on the ring in this pump and not yet pushed.</summary>
    public bool Pushed { get; set; }

    /// <summary>The event channel's handler (this ring's responses).</summary>
    public Action? OnEvent { get; set; }

    private static BlkFrontShadow[] CreateShadows(uint size)
    {
        var shadows = new BlkFrontShadow[size];
        for (int i = 0; i < shadows.Length; i++) shadows[i] = new BlkFrontShadow();
        return shadows;
    }

    private static Stack<int> CreateIds(uint size)
    {
        var ids = new Stack<int>((int)size);
        for (int i = (int)size - 1; i >= 0; i--) ids.Push(i);
        return ids;
    }
}
