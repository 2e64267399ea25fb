using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Globalization;
using BlkTap.Emulator.Internal;

namespace BlkTap.Emulator;

/// <summary>
/// The frontend block driver of an emulated guest (Linux xen-blkfront's role): performs the xenbus
/// handshake with a backend through xenstore, then turns reads, writes, flushes and discards into ring
/// requests whose data pages it grants for the request's lifetime.
/// </summary>
/// <remarks>
/// <para>Handshake (drivers/block/xen-blkfront.c): wait for the backend's InitWait; allocate and grant
/// the ring (ring-page-order pages, capped by the backend's max-ring-page-order), SHARED_RING_INIT,
/// allocate an unbound event channel; write <c>ring-ref</c> (or <c>ring-ref0..N-1</c> and
/// <c>ring-page-order</c>), <c>event-channel</c>, <c>protocol</c>, then state Initialised; wait for the
/// backend's Connected; read <c>sectors</c>, <c>sector-size</c>, <c>info</c> and the features; write
/// Connected.</para>
/// <para>Threading: the public methods may be called from any thread. All ring, grant and state work
/// runs on the emulator's scheduler; results are delivered by completing tasks (continuations run
/// asynchronously: on the scheduler when the awaiting code runs there, else on the thread pool). In
/// deterministic mode nothing happens until the emulator is pumped.</para>
/// <para>A backend that breaks the ring protocol (a response with an unknown id, an operation that
/// does not match, more responses than requests, a data page still mapped after its response) breaks
/// this frontend: every pending and later call fails with <see cref="BlkFrontException"/>, state goes
/// to Closing with an <c>error</c> node; nothing else is affected.</para>
/// <para>A backend that closes the device (before or after connecting) is expected to say why in its
/// <c>hotplug-error</c> node; the <see cref="BlkFrontException"/> message then ends with that reason.</para>
/// </remarks>
public sealed class BlkFront : IDisposable
{
    private enum Phase { Created, WaitingForBackend, Initialised, Connected, Closing, Closed, Broken }

    private readonly XenEmulator _emulator;
    private readonly IXenStore _store;
    private readonly BlkFrontOptions _options;
    private readonly Random _random;
    private readonly ConcurrentQueue<BlkFrontOperation> _incoming = new();
    private readonly Queue<BlkFrontOperation> _waiting = new();
    private readonly Stack<nint> _pagePool = new();
    private readonly Action _pump;
    private readonly Action _onEvent;
    private readonly TaskCompletionSource _connected;
    private readonly TaskCompletionSource _disconnected;

    private volatile Phase _phase = Phase.Created;
    private volatile string? _brokenReason;
    private int _connectStarted, _disconnectStarted, _pumpScheduled;
    private int _inFlight, _waitingCount;
    private long _requestsSubmitted, _responsesReceived;
    private IDisposable? _backendWatch;
    private FrontRing? _ring;
    private nint _ringBase;
    private uint[] _ringRefs = Array.Empty<uint>();
    private EmulatedEventChannel? _eventChannel;
    private BlkFrontShadow[] _shadows = Array.Empty<BlkFrontShadow>();
    private readonly Stack<int> _freeIds = new();

    /// <summary>
    /// Creates the driver for vbd <paramref name="deviceId"/> of <paramref name="domain"/>. The frontend
    /// directory must exist (see <see cref="XenbusDevices.CreateVbd"/>). Nothing happens until
    /// <see cref="ConnectAsync"/>.
    /// </summary>
    /// <exception cref="ArgumentException">The domain is dead or not of this emulator, or an option is out of range.</exception>
    /// <exception cref="InvalidOperationException">The frontend directory has no valid <c>backend</c> / <c>backend-id</c> node.</exception>
    public BlkFront(XenEmulator emulator, EmulatedDomain domain, int deviceId, BlkFrontOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(emulator);
        ArgumentNullException.ThrowIfNull(domain);
        if (domain.Emulator != emulator) throw new ArgumentException("the domain belongs to another emulator", nameof(domain));
        if (!domain.IsAlive) throw new ArgumentException($"domain {domain.Id} is dead", nameof(domain));
        ArgumentOutOfRangeException.ThrowIfNegative(deviceId);
        _options = options ?? new BlkFrontOptions();
        if (_options.MaxRingPageOrder is < 0 or > BlkifConstants.MaxRingPageOrder)
            throw new ArgumentException($"MaxRingPageOrder {_options.MaxRingPageOrder} is not in 0..{BlkifConstants.MaxRingPageOrder}", nameof(options));
        if (_options.FirstSectorOffset is < 0 or >= BlkifConstants.SectorsPerPage)
            throw new ArgumentException($"FirstSectorOffset {_options.FirstSectorOffset} is not in 0..7", nameof(options));
        if (_options.MaxSegmentsPerRequest is < 1 or > BlkifConstants.MaxSegmentsPerRequest)
            throw new ArgumentException($"MaxSegmentsPerRequest {_options.MaxSegmentsPerRequest} is not in 1..11", nameof(options));
        _emulator = emulator;
        var completionOptions = emulator.IsDeterministic ? TaskCreationOptions.None : TaskCreationOptions.RunContinuationsAsynchronously;
        _connected = new TaskCompletionSource(completionOptions);
        _disconnected = new TaskCompletionSource(completionOptions);
        _store = emulator.Store;
        Domain = domain;
        DeviceId = deviceId;
        Protocol = _options.Protocol;
        Layout = BlkifLayout.For(Protocol);
        _random = new Random(_options.Seed);
        FrontendPath = XenbusDevices.FrontendPath(domain.Id, deviceId);
        BackendPath = _store.Read(FrontendPath + "/backend")
            ?? throw new InvalidOperationException($"{FrontendPath}/backend does not exist (create the device with XenbusDevices.CreateVbd first)");
        ulong beId = XenbusDevices.ReadUnsigned(_store, FrontendPath + "/backend-id", ulong.MaxValue);
        if (beId >= XenEmulator.FirstReservedDomainId)
            throw new InvalidOperationException($"{FrontendPath}/backend-id is missing or not a domain id");
        BackendDomainId = (ushort)beId;
        _pump = Pump;
        _onEvent = OnEvent;
    }

    /// <summary>The emulated guest this driver runs in (for hostile tests: its pages and grant table).</summary>
    public EmulatedDomain Domain { get; }

    /// <summary>The device id (<c>virtual-device</c>), also used as the requests' handle.</summary>
    public int DeviceId { get; }

    /// <summary>The backend's domain id.</summary>
    public ushort BackendDomainId { get; }

    /// <summary>The frontend's xenstore directory.</summary>
    public string FrontendPath { get; }

    /// <summary>The backend's xenstore directory (from the frontend's <c>backend</c> node).</summary>
    public string BackendPath { get; }

    /// <summary>The ring ABI.</summary>
    public BlkifProtocol Protocol { get; }

    /// <summary>The ring ABI's layout.</summary>
    public BlkifLayout Layout { get; }

    /// <summary>The frontend's xenbus state as last written.</summary>
    public XenbusState State { get; private set; } = XenbusState.Unknown;

    /// <summary>The ring's page order (valid once Initialised).</summary>
    public int RingPageOrder { get; private set; }

    /// <summary>
    /// The front ring (null before the handshake). For hostile tests only: it is driven on the
    /// emulator's scheduler, so touch it only from there (<see cref="XenEmulator.Post"/>) or while a
    /// deterministic emulator is not being pumped.
    /// </summary>
    public FrontRing? Ring => _ring;

    /// <summary>The frontend's end of the event channel (null before the handshake).</summary>
    public EmulatedEventChannel? EventChannel => _eventChannel;

    /// <summary>Disk size in 512-byte sectors (backend's <c>sectors</c>), once connected.</summary>
    public ulong Sectors { get; private set; }

    /// <summary>The backend's <c>sector-size</c> (logical sector size), once connected.</summary>
    public uint SectorSize { get; private set; }

    /// <summary>The backend's <c>info</c> bits (VDISK_*), once connected.</summary>
    public VdiskInfo Info { get; private set; }

    /// <summary>True when <see cref="Info"/> has VDISK_READONLY.</summary>
    public bool IsReadOnly => (Info & VdiskInfo.ReadOnly) != 0;

    /// <summary>The backend offers <c>feature-flush-cache</c>.</summary>
    public bool SupportsFlush { get; private set; }

    /// <summary>The backend offers <c>feature-discard</c>.</summary>
    public bool SupportsDiscard { get; private set; }

    /// <summary>The backend's <c>feature-max-indirect-segments</c> (0 when absent). Recorded; this driver sends no indirect requests.</summary>
    public uint MaxIndirectSegments { get; private set; }

    /// <summary>True once connected and until disconnected or broken.</summary>
    public bool IsConnected => _phase == Phase.Connected;

    /// <summary>True once the backend broke the protocol (or the handshake failed).</summary>
    public bool IsBroken => _phase == Phase.Broken;

    /// <summary>Why the frontend is broken, or null.</summary>
    public string? BrokenReason => _brokenReason;

    /// <summary>Ring requests in flight (on the ring, not yet answered).</summary>
    public int Outstanding => Volatile.Read(ref _inFlight);

    /// <summary>Calls waiting for ring space (not yet, or not completely, placed on the ring).</summary>
    public int Queued => _incoming.Count + Volatile.Read(ref _waitingCount);

    /// <summary>Ring requests pushed so far.</summary>
    public long RequestsSubmitted => Interlocked.Read(ref _requestsSubmitted);

    /// <summary>Responses consumed so far.</summary>
    public long ResponsesReceived => Interlocked.Read(ref _responsesReceived);

    /// <summary>
    /// Starts the handshake. The task completes when both ends are Connected, or fails with
    /// <see cref="BlkFrontException"/> naming what went wrong. Call once.
    /// </summary>
    /// <exception cref="InvalidOperationException">Called twice.</exception>
    public Task ConnectAsync()
    {
        if (Interlocked.Exchange(ref _connectStarted, 1) != 0) throw new InvalidOperationException("ConnectAsync was already called");
        _emulator.Post(StartConnect);
        return _connected.Task;
    }

    /// <summary>
    /// Reads <c>buffer.Length</c> bytes (a multiple of 512) from <paramref name="sector"/>. The buffer
    /// must stay valid until the task completes. Ranges are not checked here: the backend answers
    /// out-of-range requests with <see cref="BlkifStatus.Error"/>.
    /// </summary>
    /// <exception cref="ArgumentException">The length is not a multiple of 512.</exception>
    public Task<BlkifStatus> ReadAsync(ulong sector, Memory<byte> buffer)
    {
        CheckLength(buffer.Length, nameof(buffer));
        if (buffer.Length == 0) return Task.FromResult(BlkifStatus.Okay);
        return Submit(BlkFrontOperation.ForRead(sector, buffer)).Completion!.Task;
    }

    /// <summary>
    /// Writes <c>data.Length</c> bytes (a multiple of 512) at <paramref name="sector"/>. The data is
    /// copied into granted pages when each ring request is issued, so it must stay unchanged until the
    /// task completes.
    /// </summary>
    /// <exception cref="ArgumentException">The length is not a multiple of 512.</exception>
    public Task<BlkifStatus> WriteAsync(ulong sector, ReadOnlyMemory<byte> data)
    {
        CheckLength(data.Length, nameof(data));
        if (data.Length == 0) return Task.FromResult(BlkifStatus.Okay);
        return Submit(BlkFrontOperation.ForWrite(sector, data)).Completion!.Task;
    }

    /// <summary>
    /// BLKIF_OP_FLUSH_DISKCACHE. Answers <see cref="BlkifStatus.NotSupported"/> without asking when the
    /// backend does not offer <c>feature-flush-cache</c> (as blkfront never sends it then).
    /// </summary>
    public Task<BlkifStatus> FlushAsync()
    {
        if (_phase == Phase.Connected && !SupportsFlush) return Task.FromResult(BlkifStatus.NotSupported);
        return Submit(BlkFrontOperation.ForFlush()).Completion!.Task;
    }

    /// <summary>
    /// BLKIF_OP_DISCARD of <paramref name="count"/> sectors (one ring request). Answers
    /// <see cref="BlkifStatus.NotSupported"/> without asking when the backend does not offer
    /// <c>feature-discard</c>.
    /// </summary>
    public Task<BlkifStatus> DiscardAsync(ulong sector, ulong count)
    {
        if (count == 0) return Task.FromResult(BlkifStatus.Okay);
        if (_phase == Phase.Connected && !SupportsDiscard) return Task.FromResult(BlkifStatus.NotSupported);
        return Submit(BlkFrontOperation.ForDiscard(sector, count)).Completion!.Task;
    }

    /// <summary>
    /// Hostile tests: puts <paramref name="requestBytes"/> on the ring verbatim (zero-padded to an
    /// entry), except that the id field (at <see cref="BlkifLayout.RequestId"/>) is replaced by the
    /// frontend's own id so the response can be matched. Grant any pages the request names yourself
    /// (<see cref="Domain"/>). The task completes with the backend's response as received.
    /// </summary>
    /// <exception cref="ArgumentException">The bytes are empty or longer than a ring entry.</exception>
    public Task<BlkifResponse> SubmitRaw(ReadOnlySpan<byte> requestBytes)
    {
        if (requestBytes.Length == 0 || requestBytes.Length > Layout.RingEntrySize)
            throw new ArgumentException($"a raw request must be 1..{Layout.RingEntrySize} bytes, got {requestBytes.Length}", nameof(requestBytes));
        if (requestBytes.Length < Layout.RequestId + 8)
            throw new ArgumentException($"a raw request must reach the id field ({Layout.RequestId + 8} bytes)", nameof(requestBytes));
        return Submit(BlkFrontOperation.ForRaw(requestBytes.ToArray())).RawCompletion!.Task;
    }

    /// <summary>
    /// Closes the device the xenbus way: state Closing, wait for the backend to reach Closing or Closed,
    /// fail whatever is still pending, give back the ring and event channel, state Closed. The task
    /// completes when Closed.
    /// </summary>
    public Task DisconnectAsync()
    {
        if (Interlocked.Exchange(ref _disconnectStarted, 1) == 0) _emulator.Post(StartDisconnect);
        return _disconnected.Task;
    }

    /// <summary>
    /// Tears the device down without waiting for the backend (state Closed), on the emulator's
    /// scheduler. Pages the backend still maps are freed when it unmaps them.
    /// </summary>
    public void Dispose()
    {
        Interlocked.Exchange(ref _disconnectStarted, 1);
        _emulator.Post(() =>
        {
            if (_phase == Phase.Closed) return;
            Teardown("the frontend was disposed");
            _phase = Phase.Closed;
            WriteState(XenbusState.Closed);
            _disconnected.TrySetResult();
        });
    }

    /// <inheritdoc/>
    public override string ToString() => $"blkfront {FrontendPath} ({_phase})";

    // ---------------------------------------------------------------- submission

    private static void CheckLength(int length, string name)
    {
        if (length % BlkifConstants.SectorSize != 0)
            throw new ArgumentException($"the length {length} is not a multiple of {BlkifConstants.SectorSize}", name);
    }

    private BlkFrontOperation Submit(BlkFrontOperation op)
    {
        var phase = _phase;
        if (phase == Phase.Broken) op.Fail(new BlkFrontException($"{FrontendPath} is broken: {_brokenReason}"));
        else if (phase is Phase.Closing or Phase.Closed) op.Fail(new BlkFrontException($"{FrontendPath} is disconnected"));
        else if (phase != Phase.Connected) op.Fail(new BlkFrontException($"{FrontendPath} is not connected yet (await ConnectAsync)"));
        else
        {
            _incoming.Enqueue(op);
            if (Interlocked.Exchange(ref _pumpScheduled, 1) == 0) _emulator.Post(_pump);
        }
        return op;
    }

    /// <summary>Moves calls onto the ring while it has room. Scheduler only.</summary>
    private void Pump()
    {
        Volatile.Write(ref _pumpScheduled, 0);
        if (_phase == Phase.Connected && !Domain.IsAlive)
        {
            // The guest was destroyed under us: nothing can be granted or pushed any more.
            Break($"domain {Domain.Id} is dead");
        }
        if (_phase != Phase.Connected)
        {
            FailIncoming();
            return;
        }
        while (_incoming.TryDequeue(out var op)) _waiting.Enqueue(op);
        var ring = _ring!;
        bool pushed = false;
        while (_waiting.Count > 0 && !ring.IsFull && _freeIds.Count > 0)
        {
            var op = _waiting.Peek();
            SubmitPart(op, ring);
            pushed = true;
            if (op.FullySubmitted) _waiting.Dequeue();
        }
        Volatile.Write(ref _waitingCount, _waiting.Count);
        if (pushed && ring.PushRequestsAndCheckNotify()) _eventChannel!.Notify();
    }

    private void SubmitPart(BlkFrontOperation op, FrontRing ring)
    {
        int id = _freeIds.Pop();
        var shadow = _shadows[id];
        shadow.Operation = op;
        shadow.SegmentCount = 0;
        BlkifRequest request = default;
        request.Id = (ulong)id;
        request.Handle = (ushort)DeviceId;
        switch (op.Kind)
        {
            case BlkFrontOperationKind.Read:
            case BlkFrontOperationKind.Write:
                FillDataRequest(op, shadow, ref request);
                break;
            case BlkFrontOperationKind.Flush:
                request.Operation = BlkifOperation.FlushDiskCache;
                op.FullySubmitted = true;
                break;
            case BlkFrontOperationKind.Discard:
                request.Operation = BlkifOperation.Discard;
                request.Sector = op.Sector;
                request.DiscardSectorCount = op.SectorCount;
                op.FullySubmitted = true;
                break;
            case BlkFrontOperationKind.Raw:
                {
                    var slot = ring.NextRequestSlot();
                    slot.Clear();
                    op.RawRequest!.CopyTo(slot);
                    // NOTE: every request form keeps its id at the same offset (blkif.h: id follows the
                    // 4-byte header, 8-aligned on x86_64, 4-aligned on x86_32).
                    BinaryPrimitives.WriteUInt64LittleEndian(slot[Layout.RequestId..], (ulong)id);
                    ring.CommitRequest();
                    shadow.RequestOperation = (BlkifOperation)op.RawRequest![0];
                    op.FullySubmitted = true;
                    op.PartsInFlight++;
                    Interlocked.Increment(ref _inFlight);
                    Interlocked.Increment(ref _requestsSubmitted);
                    return;
                }
        }
        shadow.RequestOperation = request.Operation;
        ring.EnqueueRequest(request);
        op.PartsInFlight++;
        Interlocked.Increment(ref _inFlight);
        Interlocked.Increment(ref _requestsSubmitted);
    }

    private void FillDataRequest(BlkFrontOperation op, BlkFrontShadow shadow, ref BlkifRequest request)
    {
        bool write = op.Kind == BlkFrontOperationKind.Write;
        request.Operation = write ? BlkifOperation.Write : BlkifOperation.Read;
        request.Sector = op.Sector + op.SubmittedSectors;
        shadow.BufferOffset = checked((int)(op.SubmittedSectors * BlkifConstants.SectorSize));
        int first = _options.RandomFirstSector ? _random.Next(BlkifConstants.SectorsPerPage) : _options.FirstSectorOffset;
        ulong remaining = op.SectorCount - op.SubmittedSectors;
        int segments = 0;
        int bufferOffset = shadow.BufferOffset;
        while (segments < _options.MaxSegmentsPerRequest && remaining > 0)
        {
            int start = segments == 0 ? first : 0;
            int count = (int)Math.Min((ulong)(BlkifConstants.SectorsPerPage - start), remaining);
            nint page = RentPage();
            // NOTE: blkfront grants data pages read-only for writes (the backend only reads them) and
            // writable for reads (xen-blkfront.c, blkif_setup_rw_req_grant).
            uint gref = Domain.Grants.GrantAccess(BackendDomainId, page, readOnly: write);
            int bytes = count * BlkifConstants.SectorSize;
            if (write)
                op.WriteData.Span.Slice(bufferOffset, bytes).CopyTo(Domain.GetPage(page).Slice(start * BlkifConstants.SectorSize, bytes));
            shadow.GrantRefs[segments] = gref;
            shadow.Pages[segments] = page;
            shadow.FirstSectors[segments] = (byte)start;
            shadow.SectorCounts[segments] = (byte)count;
            request.Segments[segments] = new BlkifSegment(gref, (byte)start, (byte)(start + count - 1));
            segments++;
            remaining -= (ulong)count;
            bufferOffset += bytes;
            op.SubmittedSectors += (ulong)count;
        }
        request.SegmentCount = segments;
        shadow.SegmentCount = segments;
        if (op.SubmittedSectors == op.SectorCount) op.FullySubmitted = true;
    }

    private nint RentPage() => _pagePool.Count > 0 ? _pagePool.Pop() : Domain.AllocatePages(1);

    // ---------------------------------------------------------------- responses

    /// <summary>The event channel handler: consumes responses, then refills the ring. Scheduler only.</summary>
    private void OnEvent()
    {
        if (_phase is not (Phase.Connected or Phase.Closing)) return;
        var ring = _ring!;
        while (true)
        {
            long n = ring.UnconsumedResponses();
            if (n < 0)
            {
                Break("the backend published more responses than there are outstanding requests (rsp_prod overrun)");
                return;
            }
            for (; n > 0; n--)
            {
                var response = ring.TakeResponse();
                Interlocked.Increment(ref _responsesReceived);
                if (!Complete(response)) return;
            }
            long more = ring.FinalCheckForResponses();
            if (more < 0)
            {
                Break("the backend published more responses than there are outstanding requests (rsp_prod overrun)");
                return;
            }
            if (more == 0) break;
        }
        if (_phase == Phase.Connected) Pump();
    }

    /// <summary>Matches a response to its shadow; false when it broke the frontend.</summary>
    private bool Complete(BlkifResponse response)
    {
        // NOTE: xen-blkfront.c blkif_interrupt(): an id out of range or not in flight, or an operation
        // differing from the request's, is a backend protocol error; the device is put in error state.
        if (response.Id >= (ulong)_shadows.Length || !_shadows[(int)response.Id].InUse)
        {
            Break($"the backend answered request id {response.Id}, which is not outstanding");
            return false;
        }
        int id = (int)response.Id;
        var shadow = _shadows[id];
        var op = shadow.Operation!;
        if (op.Kind != BlkFrontOperationKind.Raw && response.Operation != shadow.RequestOperation)
        {
            Break($"the backend answered request {id} ({shadow.RequestOperation}) with operation {(byte)response.Operation}");
            return false;
        }
        // NOTE: blkif_rsp_to_req_status(): OKAY and EOPNOTSUPP are themselves, anything else is an error.
        var status = response.Status is BlkifStatus.Okay or BlkifStatus.NotSupported ? response.Status : BlkifStatus.Error;
        if (op.Kind == BlkFrontOperationKind.Read && status == BlkifStatus.Okay)
        {
            var target = op.ReadBuffer.Span;
            int offset = shadow.BufferOffset;
            for (int s = 0; s < shadow.SegmentCount; s++)
            {
                int bytes = shadow.SectorCounts[s] * BlkifConstants.SectorSize;
                Domain.GetPage(shadow.Pages[s]).Slice(shadow.FirstSectors[s] * BlkifConstants.SectorSize, bytes).CopyTo(target.Slice(offset, bytes));
                offset += bytes;
            }
        }
        uint stillMapped = ReleaseShadow(id, shadow);
        op.PartsInFlight--;
        if (stillMapped != 0)
        {
            // NOTE: blkfront refuses to reuse a page the backend still maps after answering
            // (XSA-376 hardening, "backend has not unmapped grant").
            string reason = $"the backend still maps grant {stillMapped} after answering request {id}";
            Break(reason);
            op.Fail(new BlkFrontException($"{FrontendPath} is broken: {reason}"));
            return false;
        }
        op.Record(status);
        if (op.FullySubmitted && op.PartsInFlight == 0) op.Complete(response);
        return true;
    }

    /// <summary>Revokes a shadow's grants and frees its id; returns a reference still mapped (0 if none).</summary>
    private uint ReleaseShadow(int id, BlkFrontShadow shadow)
    {
        uint stillMapped = 0;
        for (int s = 0; s < shadow.SegmentCount; s++)
        {
            if (Domain.Grants.EndAccess(shadow.GrantRefs[s])) _pagePool.Push(shadow.Pages[s]);
            else
            {
                stillMapped = shadow.GrantRefs[s];
                Domain.FreePages(shadow.Pages[s]); // freed when the backend unmaps it
            }
        }
        shadow.SegmentCount = 0;
        shadow.Operation = null;
        _freeIds.Push(id);
        Interlocked.Decrement(ref _inFlight);
        return stillMapped;
    }

    // ---------------------------------------------------------------- handshake

    private void StartConnect()
    {
        _phase = Phase.WaitingForBackend;
        WriteState(XenbusState.Initialising);
        _backendWatch = _store.Watch(BackendPath + "/state", OnBackendChanged);
    }

    private void OnBackendChanged(string path)
    {
        var backend = XenbusDevices.ReadState(_store, BackendPath);
        switch (_phase)
        {
            case Phase.WaitingForBackend:
                if (backend == XenbusState.InitWait) TalkToBackend();
                else if (backend is XenbusState.Closing or XenbusState.Closed) Break($"the backend went to {backend} before connecting{BackendReason()}");
                break;
            case Phase.Initialised:
                if (backend == XenbusState.Connected) FinishConnect();
                else if (backend is XenbusState.Closing or XenbusState.Closed) Break($"the backend went to {backend} before connecting{BackendReason()}");
                break;
            case Phase.Connected:
                if (backend is XenbusState.Closing or XenbusState.Closed)
                {
                    // NOTE: blkback_changed(): a backend that closes takes the device away (blkfront_closing).
                    Teardown($"the backend closed the device{BackendReason()}");
                    _phase = Phase.Closed;
                    WriteState(XenbusState.Closed);
                    _disconnected.TrySetResult();
                }
                break;
            case Phase.Closing:
                if (backend is XenbusState.Closing or XenbusState.Closed or XenbusState.Unknown) FinishDisconnect();
                break;
        }
    }

    /// <summary>
    /// ": " and the backend's <c>hotplug-error</c> (why it closed the device), or "" when it wrote none.
    /// Scheduler only.
    /// </summary>
    private string BackendReason()
    {
        var reason = _store.Read(BackendPath + "/hotplug-error");
        return string.IsNullOrEmpty(reason) ? "" : ": " + reason;
    }

    private void TalkToBackend()
    {
        try
        {
            var inv = CultureInfo.InvariantCulture;
            // NOTE: blkif.h "max-ring-page-order": absent means a single-page ring with "ring-ref".
            ulong offered = XenbusDevices.ReadUnsigned(_store, BackendPath + "/max-ring-page-order", 0);
            int order = (int)Math.Min(Math.Min((ulong)_options.MaxRingPageOrder, offered), BlkifConstants.MaxRingPageOrder);
            int pages = 1 << order;
            int bytes = SharedRingLayout.BytesForOrder(order);
            _ringBase = Domain.AllocatePages(pages);
            _ringRefs = new uint[pages];
            for (int i = 0; i < pages; i++)
                _ringRefs[i] = Domain.Grants.GrantAccess(BackendDomainId, _ringBase + i * BlkifConstants.PageSize, readOnly: false);
            _ring = new FrontRing(_ringBase, bytes, Layout, initialiseShared: true);
            RingPageOrder = order;
            _shadows = new BlkFrontShadow[_ring.Size];
            for (int i = _shadows.Length - 1; i >= 0; i--)
            {
                _shadows[i] = new BlkFrontShadow();
                _freeIds.Push(i);
            }
            var (port, channel) = Domain.EventChannels.AllocUnbound(BackendDomainId);
            _eventChannel = channel;
            channel.SetHandler(_onEvent);
            if (pages == 1) _store.Write(FrontendPath + "/ring-ref", _ringRefs[0].ToString(inv));
            else
            {
                for (int i = 0; i < pages; i++) _store.Write(FrontendPath + "/ring-ref" + i.ToString(inv), _ringRefs[i].ToString(inv));
                _store.Write(FrontendPath + "/ring-page-order", order.ToString(inv));
            }
            _store.Write(FrontendPath + "/event-channel", port.ToString(inv));
            _store.Write(FrontendPath + "/protocol", Protocol.ToName());
            _phase = Phase.Initialised;
            WriteState(XenbusState.Initialised);
            // The backend may already be Connected (its watch fired before ours was processed).
            if (XenbusDevices.ReadState(_store, BackendPath) == XenbusState.Connected) FinishConnect();
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException)
        {
            Break($"the handshake failed: {e.Message}");
        }
    }

    private void FinishConnect()
    {
        ulong sectors = XenbusDevices.ReadUnsigned(_store, BackendPath + "/sectors", ulong.MaxValue);
        if (sectors == ulong.MaxValue)
        {
            Break($"{BackendPath}/sectors is missing or not a number");
            return;
        }
        Sectors = sectors;
        SectorSize = (uint)Math.Min(XenbusDevices.ReadUnsigned(_store, BackendPath + "/sector-size", BlkifConstants.SectorSize), uint.MaxValue);
        Info = (VdiskInfo)(uint)Math.Min(XenbusDevices.ReadUnsigned(_store, BackendPath + "/info", 0), uint.MaxValue);
        SupportsFlush = XenbusDevices.ReadUnsigned(_store, BackendPath + "/feature-flush-cache", 0) != 0;
        SupportsDiscard = XenbusDevices.ReadUnsigned(_store, BackendPath + "/feature-discard", 0) != 0;
        MaxIndirectSegments = (uint)Math.Min(XenbusDevices.ReadUnsigned(_store, BackendPath + "/feature-max-indirect-segments", 0), uint.MaxValue);
        _phase = Phase.Connected;
        WriteState(XenbusState.Connected);
        _connected.TrySetResult();
    }

    // ---------------------------------------------------------------- teardown

    private void StartDisconnect()
    {
        switch (_phase)
        {
            case Phase.Closed:
                _disconnected.TrySetResult();
                return;
            case Phase.Connected:
            case Phase.Initialised:
                _phase = Phase.Closing;
                WriteState(XenbusState.Closing);
                OnBackendChanged(BackendPath + "/state");
                return;
            default:
                Teardown("the frontend disconnected");
                _phase = Phase.Closed;
                WriteState(XenbusState.Closed);
                _disconnected.TrySetResult();
                return;
        }
    }

    private void FinishDisconnect()
    {
        Teardown("the frontend disconnected");
        _phase = Phase.Closed;
        WriteState(XenbusState.Closed);
        _disconnected.TrySetResult();
    }

    /// <summary>The backend broke the protocol: fail everything, stay broken, tell the backend. Scheduler only.</summary>
    private void Break(string reason)
    {
        if (_phase is Phase.Broken or Phase.Closed) return;
        _brokenReason = reason;
        _phase = Phase.Broken;
        var error = new BlkFrontException($"{FrontendPath} is broken: {reason}");
        FailAll(error);
        _connected.TrySetException(error);
        if (!Domain.IsAlive) return; // a dead guest writes nothing more to xenstore
        _store.Write(FrontendPath + "/error", reason);
        WriteState(XenbusState.Closing);
    }

    /// <summary>Fails every call and gives back every resource. Scheduler only.</summary>
    private void Teardown(string reason)
    {
        var error = new BlkFrontException($"{FrontendPath}: {reason}");
        FailAll(error);
        _connected.TrySetException(error);
        _backendWatch?.Dispose();
        _backendWatch = null;
        _eventChannel?.Dispose();
        if (_ringBase != 0)
        {
            foreach (var gref in _ringRefs)
                if (Domain.Grants.IsGranted(gref)) Domain.Grants.EndAccess(gref);
            if (Domain.IsAlive) Domain.FreePages(_ringBase); // revokes what is still mapped; freed at the last unmap
            _ringBase = 0;
        }
        while (_pagePool.Count > 0)
        {
            var page = _pagePool.Pop();
            if (Domain.IsAlive) Domain.FreePages(page);
        }
    }

    private void FailAll(Exception error)
    {
        for (int id = 0; id < _shadows.Length; id++)
        {
            var shadow = _shadows[id];
            if (!shadow.InUse) continue;
            var op = shadow.Operation!;
            if (Domain.IsAlive)
            {
                for (int s = 0; s < shadow.SegmentCount; s++)
                    if (Domain.Grants.IsGranted(shadow.GrantRefs[s]) && Domain.Grants.EndAccess(shadow.GrantRefs[s])) _pagePool.Push(shadow.Pages[s]);
                    else Domain.FreePages(shadow.Pages[s]);
            }
            shadow.SegmentCount = 0;
            shadow.Operation = null;
            _freeIds.Push(id);
            Interlocked.Decrement(ref _inFlight);
            op.Fail(error);
        }
        while (_waiting.Count > 0) _waiting.Dequeue().Fail(error);
        Volatile.Write(ref _waitingCount, 0);
        FailIncoming(error);
    }

    private void FailIncoming(Exception? error = null)
    {
        while (_incoming.TryDequeue(out var op))
            op.Fail(error ?? new BlkFrontException(_phase == Phase.Broken ? $"{FrontendPath} is broken: {_brokenReason}" : $"{FrontendPath} is not connected"));
    }

    private void WriteState(XenbusState state)
    {
        State = state;
        if (Domain.IsAlive) XenbusDevices.WriteState(_store, FrontendPath, state);
    }
}
