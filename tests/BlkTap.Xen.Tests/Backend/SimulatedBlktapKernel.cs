using System.Buffers.Binary;
using System.Collections.Concurrent;
using NUnit.Framework;
using BlkTap.Testing;

namespace BlkTap.Xen.Tests.Backend;

/// <summary>
/// The 2005 XenLinux blktap driver's side of /dev/blktap, for the tests, following
/// linux-2.6-xen-sparse/drivers/xen/blktap/ (blktap_userdev.c, blktap_datapath.c, blktap_controlmsg.c) of 2005:
/// <list type="bullet">
/// <item>rings in the 2005 ring.h format (req_prod @0, rsp_prod @4, entries @8, no event indices), written with its
/// own offsets for the x86_64 build (request 112 bytes, response 16, 32 entries; control_msg_t 64, 32 entries);</item>
/// <item>a guest's request takes one of 64 active slots (a FIFO free ring), its id is replaced by
/// (domid &lt;&lt; 16) | idx, its pages appear at data page 3 + idx*12 + seg, and it is written at the fe ring's
/// private producer; a full fe ring drops it (as the driver does); PROBE gets BLKTAP_COOKIE in frame_and_sects[1];</item>
/// <item>producers reach the shared page only when the tap polls (blktap_poll pushes, then says POLLIN);</item>
/// <item>KICK_FE reads the tap's responses, restores the guest's id, frees the slot; KICK_BE copies the tap's
/// requests to the real backend (here a model disk), whose responses come back on the be ring;</item>
/// <item>SETMODE accepts BLKTAP_MODE_VALID modes, anything else returns ENOIOCTLCMD (the fall-through);</item>
/// <item>CMSG_BLKIF_BE messages are copied on the control ring without a fullness check.</item>
/// </list>
/// It also counts what a real kernel would have suffered silently: writes into read-only (granted WRITE) pages,
/// responses naming a slot that is not in flight, requests dropped on a full fe ring. Thread-safe (one lock, like
/// blkif_io_lock).
/// </summary>
internal sealed unsafe class SimulatedBlktapKernel
{
    // x86_64 2005 blkif: u8 op @0, u8 nr @1, u16 device @2, unsigned long id @8, u64 sector @16, unsigned long fas[11] @24.
    public const int EntrySize = 112, Entries = 32, Header = 8, ResponseOp = 8, ResponseStatus = 10;
    public const int CtrlEntries = 32, CtrlSize = 64;
    public const uint Cookie = 0xbeadfeed;
    private const uint InterceptFe = 1, InterceptBe = 2, CopyFe = 4;

    private readonly FakeBlktapDevice _device;
    private readonly object _lock = new();
    private readonly Queue<int> _free = new(Enumerable.Range(0, 64));
    private readonly Active?[] _active = new Active?[64];
    private readonly Dictionary<(ushort, ulong), (short Status, byte[]? Data)> _completed = new();
    private bool _ringOk, _wake;
    private uint _mode;
    private uint _ctrlReqProdPvt, _ufeReqProdPvt, _ufeRspCons, _ubeReqCons, _ubeRspProdPvt;

    private sealed class Active
    {
        public ushort Domid;
        public ulong GuestId;
        public int Pages;
        public byte Op;
        public ulong Sector;
        public byte[] GuestData = [];
        public byte[] Snapshot = [];
    }

    public SimulatedBlktapKernel(FakeBlktapDevice device, int diskSectors)
    {
        _device = device;
        device.Kernel = this;
        Disk = new byte[diskSectors * 512L];
        // blktap_open: get_zeroed_page + SHARED_RING_INIT (req_prod = rsp_prod = 0) for the three rings.
        new Span<byte>((void*)device.Base, 3 * 4096).Clear();
    }

    /// <summary>The real backend's disk.</summary>
    public byte[] Disk { get; }
    /// <summary>The vdevice the real backend reports to PROBE.</summary>
    public ushort BackendVdevice { get; set; } = 0x0301;
    /// <summary>Whether the driver maps a WRITE's pages read-only (CONFIG_XEN_BLKDEV_GRANT).</summary>
    public bool GrantBuild { get; set; } = true;
    /// <summary>Ids the real backend received, in order.</summary>
    public ConcurrentQueue<ulong> BackendSaw { get; } = new();
    /// <summary>PROBE requests that reached the backend carrying BLKTAP_COOKIE.</summary>
    public int CookiesSeen;
    /// <summary>Requests the driver dropped because the fe ring was full.</summary>
    public int Dropped;
    /// <summary>Granted WRITE pages the tap changed (a real grant build would have faulted the tap).</summary>
    public int ReadOnlyViolations;
    /// <summary>Responses on the fe ring naming a slot that was not in flight (a real kernel indexes blindly).</summary>
    public int ProtocolViolations;

    public uint Mode { get { lock (_lock) return _mode; } set { lock (_lock) _mode = value; } }

    private byte* Page(int page) => (byte*)_device.Base + page * 4096L;
    private Span<byte> CtrlEntry(uint i) => new(Page(0) + Header + (i & (CtrlEntries - 1)) * CtrlSize, CtrlSize);
    private Span<byte> BeEntry(uint i) => new(Page(1) + Header + (i & (Entries - 1)) * EntrySize, EntrySize);
    private Span<byte> FeEntry(uint i) => new(Page(2) + Header + (i & (Entries - 1)) * EntrySize, EntrySize);
    private static ref uint Prod(byte* page, int offset) => ref *(uint*)(page + offset);

    /// <summary>Segment <paramref name="seg"/> of slot <paramref name="idx"/> in the data area (MMAP_VADDR).</summary>
    public Span<byte> DataPage(int idx, int seg) => new(Page(3 + idx * 12 + seg), 4096);

    // ------------------------------------------------------------------ file operations

    public int Mmap(long length)
    {
        lock (_lock)
        {
            if (length != (64L * 12 + 3) * 4096) return 11; // EAGAIN
            _ringOk = true;
            return 0;
        }
    }

    public int Ioctl(uint command, nuint argument)
    {
        lock (_lock)
        {
            switch (command)
            {
                case 1: ReadFeRing(); return 0;
                case 2: ReadBeRing(); return 0;
                case 3:
                    if (ModeValid((uint)argument)) { _mode = (uint)argument; return 0; }
                    return 515; // falls through PRINT_IDXS into -ENOIOCTLCMD
                default: return 515;
            }
        }
    }

    private static bool ModeValid(uint a) =>
        a is 0 or 1 or 2 or 3 || (a & ~0x10u) == 4 || (a & ~0x20u) == 8 || (a & ~0x30u) == 0xC;

    /// <summary>blktap_poll: if any ring has unpushed entries, push all three and say POLLIN; else wait for a kick.</summary>
    public bool Poll(int timeoutMs)
    {
        var deadline = Environment.TickCount64 + timeoutMs;
        lock (_lock)
        {
            while (true)
            {
                if (_wake) { _wake = false; return false; }
                if (_ctrlReqProdPvt != Volatile.Read(ref Prod(Page(0), 0)) || _ufeReqProdPvt != Volatile.Read(ref Prod(Page(2), 0))
                    || _ubeRspProdPvt != Volatile.Read(ref Prod(Page(1), 4)))
                {
                    Interlocked.MemoryBarrier();
                    Volatile.Write(ref Prod(Page(0), 0), _ctrlReqProdPvt);
                    Volatile.Write(ref Prod(Page(2), 0), _ufeReqProdPvt);
                    Volatile.Write(ref Prod(Page(1), 4), _ubeRspProdPvt);
                    return true;
                }
                long left = deadline - Environment.TickCount64;
                if (left <= 0) return false;
                Monitor.Wait(_lock, (int)left);
            }
        }
    }

    public void WakePoller()
    {
        lock (_lock) { _wake = true; Monitor.PulseAll(_lock); }
    }

    // ------------------------------------------------------------------ the controller and the guests

    /// <summary>blkif_ctrlif_rx: a CMSG_BLKIF_BE message from the domain controller, copied to the tap if intercepting.</summary>
    public void Control(ReadOnlySpan<byte> message64)
    {
        lock (_lock)
        {
            if ((_mode & (InterceptFe | CopyFe)) == 0 || !_ringOk) return;
            message64[..CtrlSize].CopyTo(CtrlEntry(_ctrlReqProdPvt)); // "No test for fullness"
            _ctrlReqProdPvt++;
            Monitor.PulseAll(_lock);
        }
    }

    /// <summary>The control ring's rsp_prod as the tap left it (the kernel never reads it).</summary>
    public uint ControlResponseProducer => Volatile.Read(ref Prod(Page(0), 4));
    /// <summary>Control messages written so far.</summary>
    public uint ControlProduced { get { lock (_lock) return _ctrlReqProdPvt; } }

    /// <summary>
    /// A guest's request arriving on its blkif ring (do_block_io_op): one 4 KiB segment per page of
    /// <paramref name="data"/> (sectors 0..7); returns the fe ring id the tap will see, or null if dropped.
    /// </summary>
    public ulong? GuestRequest(ushort domid, ulong guestId, byte op, ulong sector, byte[] data, ushort device = 0x0301, int? claimSegments = null)
    {
        Assert.That(data.Length % 4096, Is.EqualTo(0));
        lock (_lock)
        {
            Assert.That(_free, Is.Not.Empty, "no active request slot (NR_ACTIVE_REQS == MAX_ACTIVE_REQS): the driver would wait");
            int idx = _free.Dequeue();
            int pages = data.Length / 4096;
            var ar = new Active { Domid = domid, GuestId = guestId, Pages = pages, Op = op, Sector = sector, GuestData = data };
            _active[idx] = ar;
            ulong id = ((ulong)domid << 16) | (uint)(idx & 63);
            if ((_mode & (InterceptFe | InterceptBe)) == 0) { Passthrough(idx); return id; }
            if (!_ringOk) return null;
            if (_ufeReqProdPvt - _ufeRspCons == Entries) { Dropped++; return null; } // "fe_ring is full, can't add."
            var e = FeEntry(_ufeReqProdPvt);
            e.Clear();
            e[0] = op;
            e[1] = (byte)(claimSegments ?? pages);
            BinaryPrimitives.WriteUInt16LittleEndian(e[2..], device);
            BinaryPrimitives.WriteUInt64LittleEndian(e[8..], id);
            BinaryPrimitives.WriteUInt64LittleEndian(e[16..], sector);
            for (int s = 0; s < pages && s < 11; s++)
            {
                BinaryPrimitives.WriteUInt64LittleEndian(e[(24 + s * 8)..], ((ulong)(100 + s) << 16) | (0u << 5) | 7u);
                data.AsSpan(s * 4096, 4096).CopyTo(DataPage(idx, s)); // the guest's page, mapped into the tap
            }
            if (op == 2) BinaryPrimitives.WriteUInt64LittleEndian(e[(24 + 8)..], Cookie); // BLKIF_OP_PROBE_HACK
            if (op == 1 && GrantBuild) ar.Snapshot = Snapshot(idx, pages);
            _ufeReqProdPvt++;
            Monitor.PulseAll(_lock);
            return id;
        }
    }

    private byte[] Snapshot(int idx, int pages)
    {
        var copy = new byte[pages * 4096];
        for (int s = 0; s < pages; s++) DataPage(idx, s).CopyTo(copy.AsSpan(s * 4096));
        return copy;
    }

    /// <summary>Writes a raw entry at the fe ring's private producer (a kernel bug), as the next request.</summary>
    public void CorruptFeEntry(ulong id)
    {
        lock (_lock)
        {
            var e = FeEntry(_ufeReqProdPvt);
            e.Clear();
            e[1] = 1;
            BinaryPrimitives.WriteUInt64LittleEndian(e[8..], id);
            _ufeReqProdPvt++;
            Monitor.PulseAll(_lock);
        }
    }

    /// <summary>Sets the fe ring's private producer (a kernel bug), pushed at the next poll.</summary>
    public void CorruptFeProducer(uint value)
    {
        lock (_lock) { _ufeReqProdPvt = value; Monitor.PulseAll(_lock); }
    }

    /// <summary>Waits for the guest's response to its request <paramref name="guestId"/>; read data comes back in the result.</summary>
    public (short Status, byte[]? Data) WaitGuest(ushort domid, ulong guestId)
    {
        var deadline = Environment.TickCount64 + 60_000; // generous: a busy machine may starve the tap's loop for seconds
        lock (_lock)
        {
            (short Status, byte[]? Data) r;
            while (!_completed.Remove((domid, guestId), out r))
            {
                long left = deadline - Environment.TickCount64;
                if (left <= 0) { Assert.Fail($"domain {domid} got no response for its request {guestId:x}"); return default; }
                Monitor.Wait(_lock, (int)left);
            }
            return r;
        }
    }

    // ------------------------------------------------------------------ ioctls

    /// <summary>blktap_read_fe_ring: the tap's responses go back to the guests with their own ids.</summary>
    private void ReadFeRing()
    {
        if ((_mode & InterceptFe) == 0) return;
        uint rp = Volatile.Read(ref Prod(Page(2), 4));
        Interlocked.MemoryBarrier();
        for (uint i = _ufeRspCons; i != rp; i++)
        {
            var e = FeEntry(i);
            ulong id = BinaryPrimitives.ReadUInt64LittleEndian(e);
            int idx = (int)(id & 0xFFFF);
            if (idx >= 64 || _active[idx] is not { } ar || (ushort)(id >> 16) != ar.Domid) { ProtocolViolations++; _ufeRspCons = i + 1; continue; }
            Complete(idx, ar, BinaryPrimitives.ReadInt16LittleEndian(e[ResponseStatus..]));
            _ufeRspCons = i + 1;
        }
    }

    private void Complete(int idx, Active ar, short status)
    {
        if (ar.Snapshot.Length > 0 && !Snapshot(idx, ar.Pages).AsSpan().SequenceEqual(ar.Snapshot)) ReadOnlyViolations++;
        byte[]? data = null;
        if (ar.Op is 0 or 2) { data = Snapshot(idx, ar.Pages); data.CopyTo(ar.GuestData, 0); }
        _active[idx] = null;
        _free.Enqueue(idx); // free_active_req
        _completed[(ar.Domid, ar.GuestId)] = (status, data);
        Monitor.PulseAll(_lock);
    }

    /// <summary>blktap_read_be_ring: the tap's requests go to the real backend, which answers at once here.</summary>
    private void ReadBeRing()
    {
        if ((_mode & InterceptBe) == 0) return;
        uint rp = Volatile.Read(ref Prod(Page(1), 0));
        Interlocked.MemoryBarrier();
        for (uint i = _ubeReqCons; i != rp; i++)
        {
            var e = BeEntry(i);
            ulong id = BinaryPrimitives.ReadUInt64LittleEndian(e[8..]);
            BackendSaw.Enqueue(id);
            short status = Serve(e);
            // blkif_ptbe_int -> blktap_write_be_ring: the response goes on the be ring, pushed at the next poll.
            var rsp = BeEntry(_ubeRspProdPvt);
            rsp[..16].Clear();
            BinaryPrimitives.WriteUInt64LittleEndian(rsp, id);
            rsp[ResponseOp] = e[0];
            BinaryPrimitives.WriteInt16LittleEndian(rsp[ResponseStatus..], status);
            _ubeRspProdPvt++;
        }
        _ubeReqCons = rp;
        Monitor.PulseAll(_lock);
    }

    /// <summary>The real backend (blkback): maps the frontend's pages (here: the slot's pages) and does the I/O.</summary>
    private short Serve(ReadOnlySpan<byte> e)
    {
        byte op = e[0], nr = e[1];
        int idx = (int)(BinaryPrimitives.ReadUInt64LittleEndian(e[8..]) & 0xFFFF);
        long at = (long)BinaryPrimitives.ReadUInt64LittleEndian(e[16..]) * 512;
        if (op == 2)
        {
            if (BinaryPrimitives.ReadUInt64LittleEndian(e[32..]) == Cookie) CookiesSeen++;
            var v = DataPage(idx, 0);
            v[..16].Clear();
            BinaryPrimitives.WriteUInt64LittleEndian(v, (ulong)Disk.Length / 512);
            BinaryPrimitives.WriteUInt16LittleEndian(v[8..], BackendVdevice);
            BinaryPrimitives.WriteUInt16LittleEndian(v[12..], 512);
            return 1;
        }
        for (int s = 0; s < nr; s++)
        {
            ulong fas = BinaryPrimitives.ReadUInt64LittleEndian(e[(24 + s * 8)..]);
            int first = (int)(fas >> 5) & 31, count = ((int)fas & 31) - first + 1;
            var page = DataPage(idx, s).Slice(first * 512, count * 512);
            if (at + page.Length > Disk.Length) return -1;
            if (op == 0) Disk.AsSpan((int)at, page.Length).CopyTo(page);
            else page.CopyTo(Disk.AsSpan((int)at, page.Length));
            at += page.Length;
        }
        return 0;
    }

    private void Passthrough(int idx)
    {
        var ar = _active[idx]!;
        Span<byte> e = stackalloc byte[EntrySize];
        e[0] = ar.Op;
        e[1] = (byte)ar.Pages;
        BinaryPrimitives.WriteUInt64LittleEndian(e[8..], (ulong)idx);
        BinaryPrimitives.WriteUInt64LittleEndian(e[16..], ar.Sector);
        for (int s = 0; s < ar.Pages; s++)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(e[(24 + s * 8)..], 7);
            ar.GuestData.AsSpan(s * 4096, 4096).CopyTo(DataPage(idx, s));
        }
        Complete(idx, ar, Serve(e));
    }
}
