using System.Runtime.CompilerServices;

namespace BlkTap;

/// <summary>
/// The shared header of a ring in memory that another party writes concurrently. Every access is a
/// volatile 32-bit load or store; the caller supplies ring.h's barriers.
/// </summary>
/// <remarks>
/// Who writes what (ring.h): req_prod — frontend; rsp_prod — backend; req_event — backend (the
/// request index at which it wants the next notification); rsp_event — frontend (likewise for
/// responses). Each party only reads the other's fields. Not thread-safe on either side: one producer
/// and one consumer per ring end.
/// </remarks>
internal readonly unsafe struct SharedRingMemory
{
    private readonly byte* _base;

    public SharedRingMemory(nint address, int length)
    {
        if (address == 0) throw new ArgumentNullException(nameof(address));
        if (length < BlkifConstants.PageSize) throw new ArgumentOutOfRangeException(nameof(length), "a ring is at least one page");
        _base = (byte*)address;
        Length = length;
    }

    public int Length { get; }
    public nint Address => (nint)_base;

    public uint ReqProd { get => Volatile.Read(ref U32(SharedRingLayout.ReqProd)); set => Volatile.Write(ref U32(SharedRingLayout.ReqProd), value); }
    public uint ReqEvent { get => Volatile.Read(ref U32(SharedRingLayout.ReqEvent)); set => Volatile.Write(ref U32(SharedRingLayout.ReqEvent), value); }
    public uint RspProd { get => Volatile.Read(ref U32(SharedRingLayout.RspProd)); set => Volatile.Write(ref U32(SharedRingLayout.RspProd), value); }
    public uint RspEvent { get => Volatile.Read(ref U32(SharedRingLayout.RspEvent)); set => Volatile.Write(ref U32(SharedRingLayout.RspEvent), value); }

    public Span<byte> Entry(uint index, uint size, int entrySize) =>
        new(_base + SharedRingLayout.EntriesOffset + (nint)((index & (size - 1)) * (uint)entrySize), entrySize);

    /// <summary>SHARED_RING_INIT: producers 0, events 1, padding zeroed.</summary>
    public void Initialise()
    {
        new Span<byte>(_base, SharedRingLayout.EntriesOffset).Clear();
        ReqEvent = 1;
        RspEvent = 1;
        ReqProd = 0;
        RspProd = 0;
    }

    private ref uint U32(int offset) => ref Unsafe.AsRef<uint>(_base + offset);
}
