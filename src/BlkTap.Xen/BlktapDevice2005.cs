using System.Runtime.InteropServices;
using BlkTap.Xen.Internal;

namespace BlkTap.Xen;

/// <summary>
/// The 2005 blktap's kernel interface: a tap on the 2005 <c>/dev/blktap</c> character device, byte for byte as the 2005
/// XenLinux driver (<c>linux-2.6-xen-sparse/drivers/xen/blktap/</c>) and its library (<c>tools/blktap/blktaplib.c</c>)
/// define it. The mapping is exactly 771 pages: page 0 the control ring (copies of the controller's
/// CMSG_BLKIF_BE messages), page 1 the be ring (the tap produces requests for the real backend), page 2 the fe
/// ring (frontend requests in, responses out), then 64 request slots of 12 pages. Rings use the 2005 ring.h
/// (8-byte header) and the 2005 blkif structs of the x86_64 build (<see cref="Blkif2005Layout.X86_64"/>).
/// </summary>
/// <remarks>
/// <para>Threading: <see cref="Start"/> once, before the runtime's loop runs (or on it). All ring work runs on the
/// runtime's loop thread; a poll thread owned by this object only waits for the device and posts to the loop.
/// <see cref="Dispose"/> after the runtime's loop has stopped.</para>
/// <para>Why x86_64: the structs hold <c>unsigned long</c>, so the 32-bit build's layout differs
/// (<see cref="Blkif2005Layout.X86_32"/>); a .NET process on Linux is 64-bit, and a 64-bit process maps this
/// device only from a 64-bit kernel, whose rings use the x86_64 layout.</para>
/// <para>The kernel side is trusted less than fully: ids the driver cannot have made (slot beyond 63, a slot
/// already in flight) or producer indexes that overrun a ring fault the device (every session closes, nothing
/// more is written into the kernel's memory); a guest's bad request (too many segments, an operation 2005 did
/// not have, sectors outside the disk) is answered ERROR, and a protocol error closes only that domain's session.
/// Nothing throws into the kernel's memory.</para>
/// </remarks>
public sealed unsafe partial class BlktapDevice2005 : ITapBackend, IDisposable
{
    // NOTE: the device path targets the x86_64 build of the 2005 driver (see the remarks above).
    internal static readonly Blkif2005Layout Layout = Blkif2005Layout.X86_64;

    private readonly TapRuntime _runtime;
    private readonly IBlktapDeviceIo _io;
    private readonly Dictionary<ushort, BlktapDomainSession> _domains = new();
    private readonly ManualResetEventSlim _pumpRan = new(true);
    private readonly Action _pumpAction;
    private Thread? _pollThread;
    private volatile bool _stopping;
    private int _pumpQueued;
    private nint _base;
    private LegacyRing? _ctrl;
    private uint _ctrlCons;
    private bool _ctrlPushPending;
    private int _disposed;

    internal BlktapDevice2005(TapRuntime runtime, IBlktapDeviceIo io, BlktapDevice2005Options? options)
    {
        _runtime = runtime ?? throw new ArgumentNullException(nameof(runtime));
        _io = io;
        Options = options ?? new BlktapDevice2005Options();
        if (!BlktapDeviceAbi.IsValidMode(Options.Mode))
            throw new ArgumentOutOfRangeException(nameof(options), Options.Mode, "Mode is not a mode the 2005 driver accepts (BLKTAP_MODE_VALID)");
        for (int i = 0; i < _slots.Length; i++) _slots[i] = new Slot(Layout.RequestSize);
        _pumpAction = Pump;
    }

    /// <summary>Opens the device (one opener at a time). Call <see cref="Start"/> next.</summary>
    /// <exception cref="XenNotAvailableException">The device node does not exist (no 2005 blktap driver).</exception>
    /// <exception cref="XenInteropException">open failed (EBUSY: another tap holds it; EACCES: not root).</exception>
    /// <exception cref="ArgumentOutOfRangeException">The options' mode is not valid.</exception>
    public static BlktapDevice2005 Open(TapRuntime runtime, BlktapDevice2005Options? options = null)
    {
        var o = options ?? new BlktapDevice2005Options();
        if (!BlktapDeviceAbi.IsValidMode(o.Mode))
            throw new ArgumentOutOfRangeException(nameof(options), o.Mode, "Mode is not a mode the 2005 driver accepts (BLKTAP_MODE_VALID)");
        return new BlktapDevice2005(runtime, new LinuxBlktapDeviceIo(o.DevicePath), o);
    }

    /// <summary>The settings.</summary>
    public BlktapDevice2005Options Options { get; }

    /// <summary>Why the device stopped serving (a kernel-side ring overrun, a failed poll), or null.</summary>
    public string? FaultReason { get; private set; }

    /// <summary>Bytes mapped: always <see cref="BlktapDeviceAbi.MappingLength"/>.</summary>
    public long MappingLength => BlktapDeviceAbi.MappingLength;

    /// <summary>
    /// Maps the device, sets the mode (SETMODE), becomes the runtime's <see cref="TapRuntime.Backend"/> when the
    /// mode includes INTERCEPT_BE, and starts waiting for the kernel.
    /// </summary>
    /// <exception cref="XenInteropException">mmap or SETMODE failed.</exception>
    /// <exception cref="InvalidOperationException">Started twice.</exception>
    public void Start()
    {
        if (_base != 0) throw new InvalidOperationException("the device is already started");
        // NOTE: blktap_userdev.c blktap_open runs SHARED_RING_INIT on the three ring pages; the tap only attaches
        // (blktaplib.c BACK_RING_INIT/FRONT_RING_INIT start its private indexes at 0).
        _base = _io.Map(BlktapDeviceAbi.MappingLength);
        int rc = _io.Ioctl(BlktapDeviceAbi.IoctlSetMode, Options.Mode);
        if (rc != 0) throw new XenInteropException("ioctl(BLKTAP_IOCTL_SETMODE)", rc, Options.DevicePath);
        // NOTE: the kernel sizes the control ring with FRONT_RING_INIT(..., PAGE_SIZE): 32 entries of 64 bytes.
        // blktaplib.c sizes its end with CONTROL_RING_MEM (520 bytes: 8 entries), which disagrees after 8 messages;
        // the kernel's size is the one that places the entries.
        _ctrl = new LegacyRing(Page(BlktapDeviceAbi.ControlRingPage), BlktapControlMessage.Size);
        _be = new LegacyRing(Page(BlktapDeviceAbi.BackendRingPage), Layout.EntrySize);
        _fe = new LegacyRing(Page(BlktapDeviceAbi.FrontendRingPage), Layout.EntrySize);
        if (!Options.WriteDataWritable)
            _bounce = (byte*)NativeMemory.AlignedAlloc((nuint)(BlktapDeviceAbi.Slots * Blkif2005.MaxSegmentsPerRequest * BlktapDeviceAbi.PageSize), BlktapDeviceAbi.PageSize);
        if ((Options.Mode & BlktapDeviceAbi.ModeInterceptBe) != 0) _runtime.Backend = this;
        _pollThread = new Thread(PollLoop) { IsBackground = true, Name = "blktap-2005-poll" };
        _pollThread.Start();
        SchedulePump();
    }

    private nint Page(int page) => _base + page * BlktapDeviceAbi.PageSize;

    private void PollLoop()
    {
        // NOTE: blktap_userdev.c blktap_poll reports POLLIN only while a ring has entries the kernel has not yet
        // pushed, and pushes them (req_prod / rsp_prod) in the same call: the producers the tap reads move only
        // when it polls, and entries already pushed never make the device readable again. So every wake-up drains
        // everything pushed before the next poll.
        while (!_stopping)
        {
            bool ready;
            try { ready = _io.WaitForEvents(1000); }
            catch (Exception ex) when (ex is XenInteropException or ObjectDisposedException)
            {
                _runtime.Post(() => Fault($"waiting for the device failed: {ex.Message}"));
                return;
            }
            if (!ready || _stopping) continue;
            _pumpRan.Reset();
            SchedulePump();
            _pumpRan.Wait(1000);
        }
    }

    private void SchedulePump()
    {
        if (Interlocked.Exchange(ref _pumpQueued, 1) == 0) _runtime.Post(_pumpAction);
        else _pumpRan.Set();
    }

    /// <summary>Loop thread: takes control messages, backend responses and frontend requests, then publishes.</summary>
    internal void Pump()
    {
        Volatile.Write(ref _pumpQueued, 0);
        try
        {
            if (FaultReason != null || _fe == null || _disposed != 0) return;
            ProcessControl();
            if (FaultReason == null) ProcessBackendResponses();
            if (FaultReason == null) ProcessFrontendRequests();
            FlushRings();
        }
        finally { _pumpRan.Set(); }
    }

    // ------------------------------------------------------------------ control ring

    private void ProcessControl()
    {
        var ring = _ctrl!;
        uint prod = ring.ReadRequestProducer();
        uint pending = unchecked(prod - _ctrlCons);
        if (pending == 0) return;
        if (pending > ring.Entries)
        {
            // NOTE: blktap_userdev.c blktap_write_ctrl_ring: "No test for fullness": a tap that falls behind by
            // more than the ring's 32 entries has lost the oldest messages (overwritten); keep the newest 32.
            _runtime.Report(TapDiagnosticLevel.Warning, null, $"blktap: {pending - ring.Entries} control messages were overwritten before the tap read them");
            _ctrlCons = unchecked(prod - ring.Entries);
        }
        // NOTE: blktaplib.c loops "i < rp", which stops at the 2^32 wrap; the ring is read to "!=" here.
        for (; _ctrlCons != prod; _ctrlCons++) HandleControl(BlktapControlMessage.Decode(ring.Entry(_ctrlCons)));
        _ctrlPushPending = true;
    }

    private void HandleControl(in BlktapControlMessage m)
    {
        if (m.Type != BlktapControlMessage.TypeBlkifBackend)
        {
            _runtime.Report(TapDiagnosticLevel.Warning, null, $"blktap: control message type {m.Type} ignored (the driver copies only CMSG_BLKIF_BE)");
            return;
        }
        ushort domid = m.Domain;
        _domains.TryGetValue(domid, out var s);
        bool open = s is { IsOpen: true };
        switch ((BlkifBackendMessage)m.Subtype)
        {
            case BlkifBackendMessage.Create:
                if (open) { Warn(s, $"domain {domid} already has interface {s!.BlkifHandle}; CREATE of handle {m.BlkifHandle} ignored"); return; }
                s = new BlktapDomainSession(this, domid, m.BlkifHandle);
                _domains[domid] = s;
                _runtime.AttachSession(s);
                return;
            case BlkifBackendMessage.VbdCreate:
                if (!open) { Warn(null, $"VBD_CREATE for domain {domid}, which has no interface"); return; }
                if (s!.VirtualDevice is ushort v && v != m.VirtualDevice) { Warn(s, $"one disk per domain: vdevice {m.VirtualDevice:x} ignored (serving {v:x})"); return; }
                s.VirtualDevice = m.VirtualDevice;
                if (m.ReadOnly) s.ReadOnly = true;
                return;
            case BlkifBackendMessage.Connect:
                if (!open) { Warn(null, $"CONNECT for domain {domid}, which has no interface"); return; }
                if (s!.Connected) return;
                s.Connected = true;
                _runtime.ConnectSession(s);
                return;
            case BlkifBackendMessage.Disconnect:
            case BlkifBackendMessage.Destroy:
                if (open) _runtime.CloseSession(s!, ((BlkifBackendMessage)m.Subtype).ToString().ToUpperInvariant() + " from the domain controller");
                return;
            case BlkifBackendMessage.VbdDestroy:
                return;
            default:
                Warn(s, $"CMSG_BLKIF_BE subtype {m.Subtype} for domain {domid} ignored");
                return;
        }
    }

    private void Warn(TapSession? session, string message) => _runtime.Report(TapDiagnosticLevel.Warning, session, "blktap: " + message);

    // ------------------------------------------------------------------ publishing

    /// <summary>Loop thread: publishes answers and requests and kicks the kernel once per ring.</summary>
    internal void FlushRings()
    {
        if (FaultReason != null || _fe == null) return;
        if (_ctrlPushPending)
        {
            // NOTE: blktaplib.c sets the control ring's rsp_prod to its req_cons and never kicks: the kernel does
            // not read control responses (blktap_write_ctrl_ring overwrites rsp_cons with rsp_prod).
            _ctrlPushPending = false;
            _ctrl!.PublishResponseProducer(_ctrlCons);
        }
        if (_fePushPending)
        {
            _fePushPending = false;
            _fe.PublishResponseProducer(_feRspProdPvt);
            // NOTE: the 2005 rings have no event index: every push is followed by its ioctl (blktaplib.c).
            Kick(BlktapDeviceAbi.IoctlKickFe, "KICK_FE");
        }
        if (_bePushPending)
        {
            _bePushPending = false;
            _be!.PublishRequestProducer(_beReqProdPvt);
            Kick(BlktapDeviceAbi.IoctlKickBe, "KICK_BE");
        }
    }

    private void Kick(uint command, string name)
    {
        int rc = _io.Ioctl(command, 0);
        if (rc != 0) Warn(null, $"ioctl {name} failed (errno {rc})");
    }

    private void Fault(string reason)
    {
        if (FaultReason != null) return;
        FaultReason = reason;
        _runtime.Report(TapDiagnosticLevel.Error, null, $"blktap: device fault, every domain disconnected: {reason}");
        foreach (var s in _domains.Values)
            if (s.IsOpen) _runtime.CloseSession(s, "device fault: " + reason);
        foreach (var slot in _slots)
            if (slot.Tap != null && slot.State is SlotState.AtBackend or SlotState.Queued)
            {
                slot.State = SlotState.AtTap;
                _runtime.InjectResponse(slot.Tap, BlkifStatus.Error);
            }
        _beQueue.Clear();
    }

    /// <summary>
    /// Returns the driver to PASSTHROUGH, stops the poll thread and releases the device and its mapping. Call after
    /// the runtime's loop stopped. Idempotent.
    /// </summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        _stopping = true;
        _io.Wake();
        _pumpRan.Set();
        if (_pollThread != null && Thread.CurrentThread != _pollThread) _pollThread.Join();
        if (ReferenceEquals(_runtime.Backend, this)) _runtime.Backend = null;
        // NOTE: blktap_userdev.c blktap_release does not reset blktap_mode: a tap that closes in INTERPOSE leaves
        // every frontend's requests going to a ring nobody reads. blktaplib.c's SIGINT handler sets PASSTHROUGH
        // first; so does this.
        if (_base != 0) _io.Ioctl(BlktapDeviceAbi.IoctlSetMode, BlktapDeviceAbi.ModePassthrough);
        _io.Dispose();
        if (_bounce != null) { NativeMemory.AlignedFree(_bounce); _bounce = null; }
        _pumpRan.Dispose();
    }
}
