using System.Runtime.CompilerServices;

namespace BlkTap.Xen.Internal;

/// <summary>
/// A view of one 2005 shared ring page (ring.h of 2005: req_prod u32 @0, rsp_prod u32 @4, entries from @8, no
/// event indices). It holds no private indexes: the device keeps its own consumer/producer counters.
/// </summary>
/// <remarks>
/// Who writes what depends on the page: on the control and fe rings the kernel writes req_prod and the tap
/// rsp_prod; on the be ring the tap writes req_prod and the kernel rsp_prod. The peer's producer is read with a
/// volatile load followed by a full barrier (xen rmb) before entries are read; the tap's producer is published
/// after a full barrier (xen wmb). Loop thread only.
/// </remarks>
internal sealed unsafe class LegacyRing(nint page, int entrySize)
{
    private readonly byte* _base = (byte*)page;

    /// <summary>Entries in the page (a power of two).</summary>
    public uint Entries { get; } = Blkif2005.RingEntries(BlktapDeviceAbi.PageSize, entrySize);

    /// <summary>The bytes of entry <paramref name="index"/> (masked).</summary>
    public Span<byte> Entry(uint index) =>
        new(_base + Blkif2005.RingHeaderSize + (index & (Entries - 1)) * (uint)entrySize, entrySize);

    /// <summary>Reads req_prod (kernel-written on the ctrl and fe rings) and orders later entry reads after it.</summary>
    public uint ReadRequestProducer() => ReadProducer(Blkif2005.RingRequestProducer);

    /// <summary>Reads rsp_prod (kernel-written on the be ring) and orders later entry reads after it.</summary>
    public uint ReadResponseProducer() => ReadProducer(Blkif2005.RingResponseProducer);

    /// <summary>RING_PUSH_REQUESTS: publishes req_prod after the entries (be ring).</summary>
    public void PublishRequestProducer(uint value) => Publish(Blkif2005.RingRequestProducer, value);

    /// <summary>RING_PUSH_RESPONSES: publishes rsp_prod after the entries (ctrl and fe rings).</summary>
    public void PublishResponseProducer(uint value) => Publish(Blkif2005.RingResponseProducer, value);

    private uint ReadProducer(int offset)
    {
        uint value = Volatile.Read(ref Unsafe.AsRef<uint>(_base + offset));
        Interlocked.MemoryBarrier();
        return value;
    }

    private void Publish(int offset, uint value)
    {
        Interlocked.MemoryBarrier();
        Volatile.Write(ref Unsafe.AsRef<uint>(_base + offset), value);
    }
}
