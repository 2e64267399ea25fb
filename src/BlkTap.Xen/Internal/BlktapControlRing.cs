using System.Runtime.CompilerServices;

namespace BlkTap.Xen.Internal;

/// <summary>
/// The tap's (back) end of the 2005 device's control ring: a ring.h shared ring of 64-byte
/// <see cref="BlktapControlMessage"/> entries in page 0.
/// </summary>
/// <remarks>
/// Who writes what: req_prod @0 — the kernel (read with a volatile load); rsp_prod @8 — the tap. Loop thread only.
/// </remarks>
internal sealed unsafe class BlktapControlRing(nint page)
{
    private static readonly uint Entries = SharedRingLayout.EntryCount(BlktapDeviceAbi.PageSize, BlktapControlMessage.Size);
    private readonly byte* _base = (byte*)page;
    private uint _reqCons;
    private uint _rspProdPvt;

    private ref uint ReqProd => ref Unsafe.AsRef<uint>(_base + SharedRingLayout.ReqProd);
    private ref uint RspProd => ref Unsafe.AsRef<uint>(_base + SharedRingLayout.RspProd);

    /// <summary>Unanswered messages, or -1 when req_prod claims more than the ring holds (a kernel bug).</summary>
    public long Unconsumed()
    {
        uint pending = unchecked(Volatile.Read(ref ReqProd) - _reqCons);
        // NOTE: ring.h RING_REQUEST_CONS_OVERFLOW: unanswered requests can never exceed the ring's size.
        return pending > Entries - unchecked(_reqCons - _rspProdPvt) ? -1 : pending;
    }

    /// <summary>Copies the next message out of the ring (once) and advances req_cons.</summary>
    public void Take(Span<byte> destination)
    {
        Interlocked.MemoryBarrier(); // xen_rmb(): the entry is read after req_prod
        new ReadOnlySpan<byte>(Entry(_reqCons), BlktapControlMessage.Size).CopyTo(destination);
        _reqCons++;
    }

    /// <summary>Writes an answer into the next response slot.</summary>
    public void Answer(in BlktapControlMessage message)
    {
        message.Encode(new Span<byte>(Entry(_rspProdPvt), BlktapControlMessage.Size));
        _rspProdPvt++;
    }

    /// <summary>Publishes the answers (rsp_prod) after a write barrier.</summary>
    public void Push()
    {
        Interlocked.MemoryBarrier();
        Volatile.Write(ref RspProd, _rspProdPvt);
    }

    private byte* Entry(uint index) => _base + SharedRingLayout.EntriesOffset + (index & (Entries - 1)) * BlktapControlMessage.Size;
}
