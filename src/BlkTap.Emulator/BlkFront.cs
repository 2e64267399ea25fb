using System.Collections.Concurrent;
using BlkTap.Emulator.Internal;

namespace BlkTap.Emulator;

/// <summary>
/// The frontend block driver of an emulated guest (Linux xen-blkfront's role): performs the xenbus
/// handshake with a backend through xenstore, then turns reads, writes, flushes and discards into ring
/// requests whose data pages it grants for the request's lifetime.
/// </summary>
/// <remarks>
/// <para>Handshake (drivers/block/xen-blkfront.c): wait for the backend's InitWait; allocate and grant
/// min(<see cref="BlkFrontOptions.MaxQueues"/>, the backend's <c>multi-queue-max-queues</c>) rings (ring-page-order
/// pages each, capped by the backend's max-ring-page-order), SHARED_RING_INIT, an unbound event channel per ring;
/// write <c>ring-ref</c> (or <c>ring-ref0..N-1</c> and <c>ring-page-order</c>) and <c>event-channel</c> at the top
/// for one ring, or <c>multi-queue-num-queues</c> and the same keys under <c>queue-K/</c> for several;
/// <c>protocol</c>, <c>feature-persistent</c>, then state Initialised; wait for the backend's Connected; read
/// <c>sectors</c>, <c>sector-size</c>, <c>info</c> and the features (persistent grants when both ends wrote
/// <c>feature-persistent</c>=1); write Connected.</para>
/// <para>Data path: requests go to the rings in turn; a request's data pages are granted for its lifetime, or with
/// persistent grants taken from the ring's pool of pages granted once and reused (the data is copied either way).</para>
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
public sealed partial class BlkFront : IDisposable
{
    // This file: state, the public calls and disposal. The rest: BlkFront.Handshake.cs (xenbus connect),
    // BlkFront.DataPath.cs (requests onto the ring, responses off it), BlkFront.Teardown.cs (disconnect, break, give back).

    private enum Phase { Created, WaitingForBackend, Initialised, Connected, Closing, Closed, Broken }

    private readonly XenEmulator _emulator;
    private readonly IXenStore _store;
    private readonly BlkFrontOptions _options;
    private readonly Random _random;
    private readonly ConcurrentQueue<BlkFrontOperation> _incoming = new();
    private readonly Queue<BlkFrontOperation> _waiting = new();
    private readonly Stack<nint> _pagePool = new();
    private readonly Action _pump;
    private readonly TaskCompletionSource _connected;
    private readonly TaskCompletionSource _disconnected;

    private volatile Phase _phase = Phase.Created;
    private volatile string? _brokenReason;
    private int _connectStarted, _disconnectStarted, _pumpScheduled;
    private int _inFlight, _waitingCount;
    private long _requestsSubmitted, _responsesReceived;
    private IDisposable? _backendWatch;
    private BlkFrontQueue[] _queues = [];
    private int _nextQueue;
    private volatile bool _persistent;

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
        if (_options.MaxQueues is < 1 or > MaxQueuesLimit)
            throw new ArgumentException($"MaxQueues {_options.MaxQueues} is not in 1..{MaxQueuesLimit}", nameof(options));
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
    }

    /// <summary>The most queues a frontend may ask for (<see cref="BlkFrontOptions.MaxQueues"/>).</summary>
    public const int MaxQueuesLimit = 256;

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
    /// The front ring, queue 0's when there are several (null before the handshake). For hostile tests only: it is
    /// driven on the emulator's scheduler, so touch it only from there (<see cref="XenEmulator.Post"/>) or while a
    /// deterministic emulator is not being pumped. <see cref="SubmitRaw"/> always uses this ring.
    /// </summary>
    public FrontRing? Ring => _queues.Length > 0 ? _queues[0].Ring : null;

    /// <summary>The frontend's end of queue 0's event channel (null before the handshake).</summary>
    public EmulatedEventChannel? EventChannel => _queues.Length > 0 ? _queues[0].EventChannel : null;

    /// <summary>How many rings the handshake set up (valid once Initialised): min(MaxQueues, the backend's offer).</summary>
    public int QueueCount => _queues.Length;

    /// <summary>
    /// True once connected with persistent grants: this frontend wrote <c>feature-persistent</c>=1 and the backend
    /// offers it.
    /// </summary>
    public bool UsesPersistentGrants => _persistent;

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
}
