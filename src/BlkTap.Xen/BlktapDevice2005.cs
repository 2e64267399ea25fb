using BlkTap.Xen.Internal;

namespace BlkTap.Xen;

/// <summary>
/// The seed's kernel interface: a tap on the 2005 <c>/dev/blktap</c> character device. The device maps three ring
/// pages and a data area into the tap; the kernel puts every frontend's requests on the "fe" ring (page 2) with
/// ids <c>(domid &lt;&lt; 16) | slot</c> and their data pages at <c>3 + slot*12 + seg</c>; the tap runs them through
/// the request hooks and produces the passed ones on the "be" ring (page 1) for the real backend; the backend's
/// responses come back on the be ring, go through the response hooks and are answered on the fe ring with the
/// original id. Control messages (page 0, <see cref="BlktapControlMessage"/>) attach, connect and disconnect domains.
/// </summary>
/// <remarks>
/// <para>Threading: <see cref="Start"/> once, before the runtime's loop runs (or on it). All ring work runs on the
/// runtime's loop thread; a poll thread owned by this object only waits for the device and posts to the loop.
/// <see cref="Dispose"/> after the runtime's loop has stopped.</para>
/// <para>The kernel side is trusted less than fully: a request naming a slot outside the data area, too many
/// segments, an indirect operation or an id already in flight closes that domain's session (its requests are
/// answered ERROR from then on) and no other domain notices; ring indexes that overrun a ring fault the whole
/// device (every session closes) since the rings are shared. Nothing throws into the kernel's memory.</para>
/// <para>NOTE: the device initialises the three shared rings when it is mapped (SHARED_RING_INIT is the kernel's
/// job in the 2005 driver); the tap only attaches. After pushing responses on the fe ring (or answers on the
/// control ring) the tap issues KICK_FE; after pushing requests on the be ring, KICK_BE: the 2005 rings carry no
/// event-index handshake with the kernel, so every push is kicked.</para>
/// </remarks>
public sealed class BlktapDevice2005 : ITapBackend, IDisposable
{
    private readonly TapRuntime _runtime;
    private readonly IBlktapDeviceIo _io;
    private readonly Dictionary<ushort, BlktapDomainSession> _domains = new();
    private readonly Dictionary<uint, BlkifRequest> _wire = new();
    private readonly Dictionary<uint, TapRequest> _atBackend = new();
    private readonly Queue<TapRequest> _beOverflow = new();
    private readonly ManualResetEventSlim _pumpRan = new(true);
    private readonly Action _pumpAction;
    private Thread? _pollThread;
    private volatile bool _stopping;
    private int _pumpQueued;
    private nint _base;
    private BlktapControlRing? _ctrl;
    private FrontRing? _be;
    private BackRing? _fe;
    private bool _ctrlPushPending, _fePushPending, _bePushPending;
    private int _disposed;

    internal BlktapDevice2005(TapRuntime runtime, IBlktapDeviceIo io, BlktapDevice2005Options? options)
    {
        _runtime = runtime ?? throw new ArgumentNullException(nameof(runtime));
        _io = io;
        Options = options ?? new BlktapDevice2005Options();
        if (Options.Slots is < 1 or > BlktapDeviceAbi.MaxSlot + 1)
            throw new ArgumentOutOfRangeException(nameof(options), $"Slots must be 1..{BlktapDeviceAbi.MaxSlot + 1}");
        _pumpAction = Pump;
    }

    /// <summary>Opens the device (one opener at a time). Call <see cref="Start"/> next.</summary>
    /// <exception cref="XenNotAvailableException">The device node does not exist (no 2005 blktap driver).</exception>
    /// <exception cref="XenInteropException">open failed (EBUSY: another tap holds it; EACCES: not root).</exception>
    public static BlktapDevice2005 Open(TapRuntime runtime, BlktapDevice2005Options? options = null)
    {
        var o = options ?? new BlktapDevice2005Options();
        return new BlktapDevice2005(runtime, new LinuxBlktapDeviceIo(o.DevicePath), o);
    }

    /// <summary>The settings.</summary>
    public BlktapDevice2005Options Options { get; }

    /// <summary>Why the device stopped serving (a kernel-side ring overrun, a failed poll), or null.</summary>
    public string? FaultReason { get; private set; }

    /// <summary>Bytes mapped: the ring pages and the data area.</summary>
    public long MappingLength => BlktapDeviceAbi.MappingLength(Options.Slots);

    /// <summary>
    /// Maps the device, sets the mode (SETMODE), becomes the runtime's <see cref="TapRuntime.Backend"/> (requests
    /// that pass every hook go to the be ring) and starts waiting for the kernel.
    /// </summary>
    /// <exception cref="XenInteropException">mmap or SETMODE failed.</exception>
    /// <exception cref="InvalidOperationException">Started twice.</exception>
    public void Start()
    {
        if (_base != 0) throw new InvalidOperationException("the device is already started");
        _base = _io.Map(MappingLength);
        int rc = _io.Ioctl(BlktapDeviceAbi.IoctlSetMode, Options.Mode);
        if (rc != 0) throw new XenInteropException("ioctl(BLKTAP_IOCTL_SETMODE)", rc, Options.DevicePath);
        _ctrl = new BlktapControlRing(_base + BlktapDeviceAbi.ControlRingPage * BlktapDeviceAbi.PageSize);
        _be = new FrontRing(_base + BlktapDeviceAbi.BackendRingPage * BlktapDeviceAbi.PageSize, BlktapDeviceAbi.PageSize, BlkifLayout.X86_64, initialiseShared: false);
        _fe = new BackRing(_base + BlktapDeviceAbi.FrontendRingPage * BlktapDeviceAbi.PageSize, BlktapDeviceAbi.PageSize, BlkifLayout.X86_64);
        _runtime.Backend = this;
        _pollThread = new Thread(PollLoop) { IsBackground = true, Name = "blktap-2005-poll" };
        _pollThread.Start();
        SchedulePump();
    }

    private void PollLoop()
    {
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
            // A readable device stays readable until the loop has consumed its work: wait for that pass.
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
        long n = ring.Unconsumed();
        if (n < 0) { Fault("the control ring's req_prod claims more messages than the ring holds"); return; }
        Span<byte> entry = stackalloc byte[BlktapControlMessage.Size];
        for (; n > 0; n--)
        {
            ring.Take(entry);
            if (!BlktapControlMessage.TryDecode(entry, out var message, out var error))
            {
                ushort domid = (ushort)(entry[2] | entry[3] << 8);
                _runtime.Report(TapDiagnosticLevel.Warning, null, $"blktap: control message for domain {domid} refused: {error}");
                ring.Answer(new BlktapControlMessage((BlktapControlType)entry[0], domid, BlktapControlMessage.StatusRefused));
            }
            else ring.Answer(HandleControl(in message));
            _ctrlPushPending = true;
        }
    }

    private BlktapControlMessage HandleControl(in BlktapControlMessage m)
    {
        _domains.TryGetValue(m.Domain, out var session);
        bool open = session is { IsOpen: true };
        switch (m.Type)
        {
            case BlktapControlType.Attach:
                if (open)
                {
                    _runtime.Report(TapDiagnosticLevel.Warning, session, $"blktap: domain {m.Domain} is already attached");
                    return new(m.Type, m.Domain, BlktapControlMessage.StatusRefused);
                }
                session = new BlktapDomainSession(this, m.Domain, m.ImageId);
                _domains[m.Domain] = session;
                _runtime.AttachSession(session);
                if (!session.IsOpen) return new(m.Type, m.Domain, BlktapControlMessage.StatusRefused);
                return new(m.Type, m.Domain, BlktapControlMessage.StatusOkay, session.Sectors, session.SectorSize, (uint)session.Info);
            case BlktapControlType.Connect:
                if (!open) return new(m.Type, m.Domain, BlktapControlMessage.StatusRefused);
                _runtime.ConnectSession(session!);
                return new(m.Type, m.Domain, BlktapControlMessage.StatusOkay);
            case BlktapControlType.Disconnect:
                if (!open) return new(m.Type, m.Domain, BlktapControlMessage.StatusRefused);
                _runtime.CloseSession(session!);
                return new(m.Type, m.Domain, BlktapControlMessage.StatusOkay);
            default:
                _runtime.Report(TapDiagnosticLevel.Warning, session, $"blktap: unknown control message type {(byte)m.Type} for domain {m.Domain}");
                return new(m.Type, m.Domain, BlktapControlMessage.StatusUnknownType);
        }
    }

    // ------------------------------------------------------------------ fe ring (requests in, responses out)

    private void ProcessFrontendRequests()
    {
        var ring = _fe!;
        while (FaultReason == null)
        {
            long n = ring.UnconsumedRequests();
            if (n == 0) n = ring.FinalCheckForRequests();
            if (n < 0) { Fault($"the fe ring's req_prod claims more than the ring's {ring.Size} slots (req_cons {ring.RequestConsumer})"); return; }
            if (n == 0) return;
            for (; n > 0; n--)
            {
                ring.TakeRequest(out var wire);
                Accept(in wire);
            }
        }
    }

    private void Accept(in BlkifRequest wire)
    {
        ushort domid = BlktapDeviceAbi.IdDomain(wire.Id);
        int slot = BlktapDeviceAbi.IdSlot(wire.Id);
        _domains.TryGetValue(domid, out var session);
        string? hostile =
            wire.Id > uint.MaxValue ? $"request id {wire.Id:x} is wider than (domid << 16) | slot"
            : slot >= Options.Slots ? $"request id {wire.Id:x} names slot {slot}, beyond the data area's {Options.Slots} slots"
            : wire.Operation == BlkifOperation.Indirect ? "indirect requests do not exist on the 2005 device"
            : wire.SegmentCount > BlktapDeviceAbi.MaxSegmentsPerRequest ? $"request {wire.Id:x} has {wire.SegmentCount} segments (at most {BlktapDeviceAbi.MaxSegmentsPerRequest})"
            : _wire.ContainsKey((uint)wire.Id) ? $"request id {wire.Id:x} is already in flight"
            : null;
        if (hostile != null)
        {
            // NOTE: one domain's bad request must not disturb the others sharing the rings: close its session only,
            // and still answer the id so the kernel frees whatever it holds for it.
            if (session is { IsOpen: true }) _runtime.CloseSession(session, "protocol error: " + hostile);
            else _runtime.Report(TapDiagnosticLevel.Warning, null, $"blktap: domain {domid}: {hostile}");
            AnswerDirectly(wire.Id, wire.Operation, BlkifStatus.Error);
            return;
        }
        if (session is not { IsOpen: true })
        {
            AnswerDirectly(wire.Id, wire.Operation, BlkifStatus.Error);
            return;
        }
        uint key = (uint)wire.Id;
        _wire[key] = wire;
        var r = _runtime.RentRequest(session, wire.Id, wire.Operation, wire.Sector);
        var fault = BlkifValidation.Validate(in wire, session.Sectors, session.ReadOnly);
        if (fault != RequestFault.None) { _runtime.Reject(r, BlkifValidation.StatusFor(fault)); return; }
        if ((wire.Operation == BlkifOperation.Discard && !session.SupportsDiscard) || (wire.Operation == BlkifOperation.FlushDiskCache && !session.SupportsFlush))
        {
            _runtime.Reject(r, BlkifStatus.NotSupported);
            return;
        }
        if (wire.Operation == BlkifOperation.Discard)
        {
            TapRuntime.SetDiscard(r, wire.DiscardSectorCount, wire.DiscardFlags);
        }
        else
        {
            if (wire.Operation == BlkifOperation.WriteBarrier) TapRuntime.SetForceUnitAccess(r, true);
            for (int s = 0; s < wire.SegmentCount; s++)
            {
                var seg = wire.Segments[s];
                // NOTE: the 2005 device maps segment s of slot i at page 3 + i*12 + s of the mmap area; the segment's
                // grant field means nothing to the tap, only first_sect/last_sect place the data in that page.
                TapRuntime.AddSegment(r, _base + (nint)BlktapDeviceAbi.DataOffset(slot, s) + seg.PageOffset, seg.ByteCount);
            }
        }
        _runtime.Submit(r);
    }

    private void AnswerDirectly(ulong id, BlkifOperation op, BlkifStatus status)
    {
        _fe!.EnqueueResponse(new BlkifResponse(id, op, status));
        _fePushPending = true;
    }

    /// <summary>Loop thread: the request's response passed the response hooks; answer it on the fe ring.</summary>
    internal void CompleteOnFrontendRing(TapRequest request)
    {
        _wire.Remove((uint)request.Id);
        if (FaultReason != null || _fe == null || _disposed != 0) return;
        AnswerDirectly(request.Id, request.WireOperation, request.Status);
    }

    // ------------------------------------------------------------------ be ring (requests out, responses in)

    /// <inheritdoc/>
    /// <remarks>Loop thread: produces the request on the be ring with its original id and segments (the backend
    /// finds the data in the same data-area pages, with whatever the hooks wrote there).</remarks>
    public void Submit(TapRequest request)
    {
        if (request.Session is not BlktapDomainSession s || s.Device != this || FaultReason != null || !_wire.ContainsKey((uint)request.Id))
        {
            _runtime.InjectResponse(request, BlkifStatus.Error);
            return;
        }
        if (_be!.IsFull || _beOverflow.Count > 0) { _beOverflow.Enqueue(request); return; }
        SendToBackend(request);
    }

    private void SendToBackend(TapRequest request)
    {
        uint key = (uint)request.Id;
        _be!.EnqueueRequest(_wire[key]);
        _atBackend[key] = request;
        _bePushPending = true;
    }

    private void ProcessBackendResponses()
    {
        var ring = _be!;
        while (FaultReason == null)
        {
            long n = ring.UnconsumedResponses();
            if (n == 0) n = ring.FinalCheckForResponses();
            if (n < 0) { Fault("the be ring's rsp_prod claims more responses than requests outstanding"); return; }
            if (n == 0) break;
            for (; n > 0; n--)
            {
                var rsp = ring.TakeResponse();
                if (rsp.Id <= uint.MaxValue && _atBackend.Remove((uint)rsp.Id, out var request))
                    _runtime.InjectResponse(request, rsp.Status);
                else
                    _runtime.Report(TapDiagnosticLevel.Warning, null, $"blktap: the backend answered id {rsp.Id:x}, which is not at the backend; ignored");
            }
        }
        while (FaultReason == null && _beOverflow.Count > 0 && !ring.IsFull)
        {
            var next = _beOverflow.Dequeue();
            if (_wire.ContainsKey((uint)next.Id)) SendToBackend(next);
            else _runtime.InjectResponse(next, BlkifStatus.Error);
        }
    }

    // ------------------------------------------------------------------ publishing

    /// <summary>Loop thread: publishes answers and requests and kicks the kernel once per ring.</summary>
    internal void FlushRings()
    {
        if (FaultReason != null || _fe == null) return;
        bool kickFe = false;
        if (_ctrlPushPending) { _ctrlPushPending = false; _ctrl!.Push(); kickFe = true; }
        if (_fePushPending) { _fePushPending = false; _fe.PushResponsesAndCheckNotify(); kickFe = true; }
        if (kickFe) Kick(BlktapDeviceAbi.IoctlKickFe, "KICK_FE");
        if (_bePushPending)
        {
            _bePushPending = false;
            _be!.PushRequestsAndCheckNotify();
            Kick(BlktapDeviceAbi.IoctlKickBe, "KICK_BE");
        }
    }

    private void Kick(uint command, string name)
    {
        int rc = _io.Ioctl(command, 0);
        if (rc != 0) _runtime.Report(TapDiagnosticLevel.Warning, null, $"blktap: ioctl {name} failed (errno {rc})");
    }

    private void Fault(string reason)
    {
        if (FaultReason != null) return;
        FaultReason = reason;
        _runtime.Report(TapDiagnosticLevel.Error, null, $"blktap: device fault, every domain disconnected: {reason}");
        foreach (var s in _domains.Values)
            if (s.IsOpen) _runtime.CloseSession(s, "device fault: " + reason);
        foreach (var r in _atBackend.Values) _runtime.InjectResponse(r, BlkifStatus.Error);
        _atBackend.Clear();
        while (_beOverflow.Count > 0) _runtime.InjectResponse(_beOverflow.Dequeue(), BlkifStatus.Error);
    }

    /// <summary>Stops the poll thread and releases the device and its mapping. Call after the runtime's loop stopped. Idempotent.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        _stopping = true;
        _io.Wake();
        _pumpRan.Set();
        if (_pollThread != null && Thread.CurrentThread != _pollThread) _pollThread.Join();
        if (ReferenceEquals(_runtime.Backend, this)) _runtime.Backend = null;
        _io.Dispose();
        _pumpRan.Dispose();
    }
}
