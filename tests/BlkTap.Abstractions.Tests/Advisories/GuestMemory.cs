using BlkTap.Emulator;
using BlkTap.Testing.Advisories;

namespace BlkTap.Abstractions.Tests.Advisories;

/// <summary>What a hostile guest does to its own memory: ring slots, descriptor pages, data pages.</summary>
internal static unsafe class GuestMemory
{
    /// <summary>Every entry of the guest's ring (the header and its indexes untouched).</summary>
    public static Span<byte> Slot(BlkFront front, uint index)
    {
        var ring = front.Ring!;
        int entry = ring.Layout.RingEntrySize;
        return new Span<byte>((byte*)ring.Address + SharedRingLayout.EntriesOffset + (index & (ring.Size - 1)) * entry, entry);
    }

    /// <summary>Applies <paramref name="edit"/> to every ring entry of <paramref name="front"/>.</summary>
    public static void EditEverySlot(BlkFront front, Action<Span<byte>> edit)
    {
        for (uint i = 0; i < front.Ring!.Size; i++) edit(Slot(front, i));
    }

    /// <summary>rsp_prod as the backend published it.</summary>
    public static uint ResponseProducer(BlkFront front) =>
        Volatile.Read(ref *(uint*)((byte*)front.Ring!.Address + SharedRingLayout.RspProd));

    /// <summary>Writes segment descriptor <paramref name="index"/> into an indirect page.</summary>
    public static void WriteDescriptor(EmulatedDomain domain, nint page, int index, BlkifSegment segment) =>
        HostileEdits.WriteDescriptor(domain.GetPage(page), index, segment);

    /// <summary>Fills a page with a pattern that names it and each sector in it.</summary>
    public static void FillPattern(EmulatedDomain domain, nint page, byte tag) => HostileEdits.FillPattern(domain.GetPage(page), tag);

    /// <summary>What a guest's rewrite of a consumed request slot puts there: an impossible, out-of-range request.</summary>
    public static void Garble(Span<byte> slot, BlkifLayout layout, uint foreignRef) => HostileEdits.Garble(slot, layout, foreignRef);
}
