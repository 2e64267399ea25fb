using BlkTap.Emulator.Internal;

namespace BlkTap.Emulator;

/// <summary>
/// The in-process "hypervisor": domains with native memory, grant tables, event channels, one shared
/// xenstore, and a scheduler that runs every asynchronous callback (event deliveries, watch events,
/// posted work). One per test. Domain 0 exists from the start.
/// </summary>
/// <remarks>
/// Threading: every member is safe to call from any thread, except that the run methods
/// (<see cref="Step"/>, <see cref="RunUntilIdle"/>, <see cref="RunUntil"/>) must not be called from a
/// callback the emulator is running, and in deterministic mode only one thread should pump.
/// Callbacks never run on the stack of the code that caused them (a notifier, a xenstore writer).
/// </remarks>
public sealed class XenEmulator : IDisposable
{
    /// <summary>DOMID_FIRST_RESERVED (xen/include/public/xen.h): ids from 0x7FF0 up are special.</summary>
    public const ushort FirstReservedDomainId = XenDomainIds.FirstReserved;

    private readonly object _memoryGate = new();
    private readonly object _eventGate = new();
    private readonly object _domainGate = new();
    private readonly Dictionary<ushort, EmulatedDomain> _domains = new();
    private readonly Dictionary<long, GrantMapping> _mappings = new();
    private readonly Stack<GrantMapping> _mappingPool = new(); // unmapped GrantMappings for reuse (memory gate)
    private ushort _nextDomainId = 1;
    private long _nextHandle;
    private long _livePages;
    private long _mapOperations, _unmapOperations;
    private bool _disposed;
    private readonly bool _protectReadOnlyGrants;
    private readonly WriteProtectedPages _writeProtected = new();

    /// <summary>Creates an emulator with dom0 ("Domain-0").</summary>
    public XenEmulator(XenEmulatorOptions? options = null)
    {
        options ??= new XenEmulatorOptions();
        Seed = options.Seed;
        Scheduler = options.Mode == SchedulerMode.Deterministic
            ? new DeterministicScheduler(options.Seed, options.MaxStepsPerRun)
            : new ThreadedScheduler(options.WaitTimeout);
        Store = new EmulatedXenStore(Scheduler);
        _protectReadOnlyGrants = options.ProtectReadOnlyGrants;
        Dom0 = AddDomain(0, "Domain-0");
    }

    /// <summary>Creates a deterministic emulator whose scheduling choices follow <paramref name="seed"/>.</summary>
    public static XenEmulator CreateDeterministic(int seed) =>
        new(new XenEmulatorOptions { Mode = SchedulerMode.Deterministic, Seed = seed });

    internal EmulatorScheduler Scheduler { get; }

    /// <summary>The xenstore shared by every domain.</summary>
    public EmulatedXenStore Store { get; }

    /// <summary>Domain 0, the control domain (where backends usually run).</summary>
    public EmulatedDomain Dom0 { get; }

    /// <summary>True in <see cref="SchedulerMode.Deterministic"/>.</summary>
    public bool IsDeterministic => Scheduler.IsDeterministic;

    /// <summary>The seed of the deterministic scheduler.</summary>
    public int Seed { get; }

    /// <summary>
    /// The synchronization context whose Post runs work on the emulator's scheduler. It is installed
    /// while callbacks run, so <c>await</c> in code started by <see cref="Post"/> or <see cref="Spawn"/>
    /// resumes on the scheduler (in deterministic mode: deterministically).
    /// </summary>
    public SynchronizationContext SynchronizationContext => Scheduler.Context;

    /// <summary>True when the calling thread is running a callback of this emulator.</summary>
    public bool IsSchedulerThread => Scheduler.IsCurrentThread;

    /// <summary>Exceptions thrown by callbacks so far (each is also thrown once from a run method).</summary>
    public IReadOnlyList<Exception> Faults => Scheduler.Faults;

    /// <summary>Native pages allocated by all domains and not yet freed (deferred frees count until they happen).</summary>
    public long LivePageCount => Interlocked.Read(ref _livePages);

    /// <summary>Live grant mappings (Map calls not yet unmapped), over all mappers.</summary>
    public int MappingCount
    {
        get { lock (_memoryGate) return _mappings.Count; }
    }

    /// <summary>
    /// Grant map operations so far, over all mappers: each successful Map call counts once however many references
    /// it maps (one gntdev ioctl, one hypercall batch on Xen). With persistent grants it stops growing at steady state.
    /// </summary>
    public long MapOperations => Interlocked.Read(ref _mapOperations);

    /// <summary>Grant unmap operations so far (Unmap calls that released a live mapping), over all mappers.</summary>
    public long UnmapOperations => Interlocked.Read(ref _unmapOperations);

    /// <summary>Queues <paramref name="work"/> to run on the scheduler. Callable from any thread, including callbacks.</summary>
    public void Post(Action work) => Scheduler.Post(work);

    /// <summary>
    /// Starts async work on the scheduler (with its synchronization context installed) and returns a
    /// task for its completion. In deterministic mode, pump with <see cref="RunUntil"/> until it completes.
    /// </summary>
    public Task Spawn(Func<Task> work)
    {
        ArgumentNullException.ThrowIfNull(work);
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Scheduler.Post(() =>
        {
            Task t;
            try { t = work(); }
            catch (Exception e) { done.TrySetException(e); return; }
            t.ContinueWith(static (inner, state) =>
            {
                var tcs = (TaskCompletionSource)state!;
                if (inner.IsFaulted) tcs.TrySetException(inner.Exception!.InnerExceptions);
                else if (inner.IsCanceled) tcs.TrySetCanceled();
                else tcs.TrySetResult();
            }, done, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        });
        return done.Task;
    }

    /// <summary>
    /// Deterministic mode only: runs one pending callback, chosen by the seeded generator. False when
    /// nothing is pending. Throws <see cref="EmulatorFaultException"/> if the callback threw.
    /// </summary>
    /// <exception cref="InvalidOperationException">Threaded mode, or called from inside a callback.</exception>
    public bool Step() => Scheduler.Step();

    /// <summary>
    /// Deterministic mode: runs callbacks until none is pending. Threaded mode: waits until the
    /// hypervisor thread has nothing queued or running. Throws <see cref="EmulatorFaultException"/>
    /// for a callback that threw.
    /// </summary>
    public void RunUntilIdle() => Scheduler.RunUntilIdle();

    /// <summary>
    /// Deterministic mode: runs callbacks until <paramref name="condition"/> holds (true) or nothing is
    /// pending (returns the condition then). Threaded mode: waits for the condition (true) or throws
    /// <see cref="TimeoutException"/>. The condition is evaluated on the calling thread.
    /// </summary>
    public bool RunUntil(Func<bool> condition) => Scheduler.RunUntil(condition);

    /// <summary>Creates a domain with the next free id and writes its <c>/local/domain/&lt;id&gt;/name</c>.</summary>
    /// <exception cref="InvalidOperationException">No domain ids are left, or the emulator is disposed.</exception>
    public EmulatedDomain CreateDomain(string name)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        ushort id;
        lock (_domainGate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_nextDomainId >= FirstReservedDomainId) throw new InvalidOperationException("no domain ids are left");
            id = _nextDomainId++;
        }
        var domain = AddDomain(id, name);
        Store.FireSpecial(XenStorePath.IntroduceDomain);
        return domain;
    }

    /// <summary>
    /// Destroys a domain: closes its event channels, revokes its grants (mappers get
    /// <see cref="GrantStatus.NoSuchDomain"/> on new maps; existing mappings stay valid until unmapped),
    /// drops the mappings it held of other domains' pages, frees its memory (deferred while mapped),
    /// removes <c>/local/domain/&lt;id&gt;</c> and fires <c>@releaseDomain</c>. False if no such live domain.
    /// </summary>
    public bool DestroyDomain(ushort id)
    {
        EmulatedDomain? domain;
        lock (_domainGate)
        {
            if (!_domains.TryGetValue(id, out domain) || !domain.IsAlive) return false;
        }
        Kill(domain);
        Store.Remove($"/local/domain/{id}");
        Store.FireSpecial(XenStorePath.ReleaseDomain);
        return true;
    }

    /// <summary>The domain with id <paramref name="id"/>, alive or dead.</summary>
    public bool TryGetDomain(ushort id, out EmulatedDomain domain)
    {
        lock (_domainGate)
        {
            if (_domains.TryGetValue(id, out var found)) { domain = found; return true; }
        }
        domain = null!;
        return false;
    }

    /// <summary>The domain with id <paramref name="id"/>.</summary>
    /// <exception cref="ArgumentException">No such domain.</exception>
    public EmulatedDomain GetDomain(ushort id) =>
        TryGetDomain(id, out var d) ? d : throw new ArgumentException($"domain {id} does not exist", nameof(id));

    /// <summary>
    /// The grant mapper (emulated gntdev) of domain <paramref name="domid"/>, for a backend running
    /// there. Map checks every reference (granted to this domain, not revoked, writable if asked) and
    /// returns the real pages; any failure maps nothing.
    /// </summary>
    /// <exception cref="ArgumentException">No such domain.</exception>
    public IGrantMapper GrantMapperFor(ushort domid)
    {
        GetDomain(domid);
        return new EmulatedGrantMapper(this, domid);
    }

    /// <summary>The event channel factory (emulated evtchn device) of domain <paramref name="domid"/>.</summary>
    /// <exception cref="ArgumentException">No such domain.</exception>
    public IEventChannelFactory EventChannelFactoryFor(ushort domid)
    {
        GetDomain(domid);
        return new EmulatedEventChannelFactory(this, domid, _eventGate);
    }

    /// <summary>
    /// The grant issuer (emulated gntalloc) of domain <paramref name="domid"/>, for a frontend running there:
    /// it allocates the domain's pages and grants them.
    /// </summary>
    /// <exception cref="ArgumentException">No such domain.</exception>
    public IGrantIssuer GrantIssuerFor(ushort domid) => new EmulatedGrantIssuer(GetDomain(domid));

    /// <summary>
    /// Everything a block frontend running in domain <paramref name="domid"/> needs (xenstore, event
    /// channels it can offer, pages it can grant): give it to a <see cref="XenbusBlockFrontend"/>.
    /// </summary>
    /// <exception cref="ArgumentException">No such domain.</exception>
    public BlockFrontendPlatform FrontendPlatformFor(ushort domid) =>
        new(domid, Store, EventChannelFactoryFor(domid), GrantIssuerFor(domid));

    /// <summary>Stops the scheduler and destroys every domain. Pages still mapped are freed at their last unmap.</summary>
    public void Dispose()
    {
        EmulatedDomain[] all;
        lock (_domainGate)
        {
            if (_disposed) return;
            _disposed = true;
            all = _domains.Values.ToArray();
        }
        Scheduler.Dispose();
        foreach (var d in all) Kill(d);
        // A backend may outlive the emulator with a mapping still in use: its read-only views stay mapped then.
        lock (_memoryGate) if (_writeProtected.InUse == 0) _writeProtected.Dispose();
    }

    private EmulatedDomain AddDomain(ushort id, string name)
    {
        var domain = new EmulatedDomain(this, id, name, _memoryGate, _eventGate);
        lock (_domainGate) _domains.Add(id, domain);
        Store.Write($"/local/domain/{id}/name", name);
        Store.Write($"/local/domain/{id}/domid", id.ToString(System.Globalization.CultureInfo.InvariantCulture));
        return domain;
    }

    private void Kill(EmulatedDomain domain)
    {
        lock (_eventGate) domain.EventChannels.CloseAllLocked();
        List<long> held = new();
        lock (_memoryGate)
        {
            foreach (var (handle, mapping) in _mappings)
                if (mapping.Mapper == domain.Id) held.Add(handle);
            domain.KillLocked();
        }
        foreach (var h in held) UnmapGrants(h);
    }

    internal void OnPagesAllocatedLocked(int count) => Interlocked.Add(ref _livePages, count);

    internal void OnPagesFreedLocked(int count) => Interlocked.Add(ref _livePages, -count);

    internal GrantStatus MapGrants(ushort mapper, ushort granterId, ReadOnlySpan<uint> refs, bool writable, Span<nint> pages, out long handle)
    {
        handle = 0;
        if (!TryGetDomain(mapper, out var mapperDomain) || !mapperDomain.IsAlive) return GrantStatus.Failed;
        if (!TryGetDomain(granterId, out var granter)) return GrantStatus.NoSuchDomain;
        lock (_memoryGate)
        {
            if (!granter.IsAlive) return GrantStatus.NoSuchDomain;
            // Check everything first, so a failure maps nothing.
            for (int i = 0; i < refs.Length; i++)
            {
                var entry = granter.Grants.LookupLocked(refs[i]);
                if (entry is not { Active: true } || entry.ToDomain != mapper) return GrantStatus.NotGranted;
                if (writable && entry.ReadOnly) return GrantStatus.ReadOnly;
            }
            if (!_mappingPool.TryPop(out var mapping)) mapping = new GrantMapping();
            mapping.Reset(mapper, granter, refs.Length);
            for (int i = 0; i < refs.Length; i++)
            {
                var entry = granter.Grants.LookupLocked(refs[i])!;
                entry.MapCount++;
                entry.Allocation.AddMapping(entry.PageIndex);
                mapping.Add(entry);
                if (!writable && _protectReadOnlyGrants)
                {
                    mapping.AddShadow(_writeProtected.Rent(entry.Page, out var readOnly));
                    pages[i] = readOnly;
                }
                else pages[i] = entry.Page;
            }
            handle = ++_nextHandle;
            _mappings.Add(handle, mapping);
            Interlocked.Increment(ref _mapOperations);
            return GrantStatus.Okay;
        }
    }

    internal void UnmapGrants(long handle)
    {
        lock (_memoryGate)
        {
            if (!_mappings.Remove(handle, out var mapping)) return;
            Interlocked.Increment(ref _unmapOperations);
            foreach (var entry in mapping.Entries)
            {
                entry.MapCount--;
                mapping.Granter.Grants.OnUnmappedLocked(entry);
                if (entry.Allocation.RemoveMapping(entry.PageIndex)) OnPagesFreedLocked(entry.Allocation.PageCount);
            }
            foreach (var slot in mapping.Shadows) _writeProtected.Return(slot);
            mapping.Clear();
            // Bounded: a pool as large as the most mappings ever held at once is enough for steady state.
            if (_mappingPool.Count < 4096) _mappingPool.Push(mapping);
        }
    }
}
