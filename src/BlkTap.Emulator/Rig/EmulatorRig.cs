namespace BlkTap.Emulator;

/// <summary>Settings of an <see cref="EmulatorRig"/>.</summary>
public sealed class EmulatorRigOptions
{
    /// <summary>Number of frontend domains (each with one disk).</summary>
    public int Frontends { get; set; } = 2;
    /// <summary>Deterministic mode: one thread, scheduling chosen by <see cref="Seed"/>.</summary>
    public bool Deterministic { get; set; }
    /// <summary>The seed of deterministic scheduling and of frontends' choices.</summary>
    public int Seed { get; set; } = 1;
    /// <summary>The ABI the frontends speak.</summary>
    public BlkifProtocol Protocol { get; set; } = BlkifProtocol.X86_64;
    /// <summary>Image identifier (xenstore <c>params</c>) for frontend i; default "disk{i}".</summary>
    public Func<int, string> ImageId { get; set; } = i => $"disk{i}";
    /// <summary>The virtual device number of each frontend's disk (51712 is xvda).</summary>
    public int DeviceId { get; set; } = 51712;
    /// <summary>Whether frontends place data at random sector offsets within pages (first_sect ≠ 0).</summary>
    public bool RandomFirstSector { get; set; } = true;
    /// <summary>
    /// Interposition placement: when set, dom0 runs a plain blkback serving this device, the tap runs
    /// in its own domain ("tap") as a frontend of that blkback, and the guests connect to the tap.
    /// The chain then must not end in a terminator: passed requests go on to the blkback.
    /// </summary>
    public IBlockDevice? BlkbackDevice { get; set; }
    /// <summary>Runtime diagnostics sink.</summary>
    public Action<TapDiagnostic>? Diagnostics { get; set; }
    /// <summary>
    /// What the tap's xenbus backend offers (persistent grants, queues, ring order); null: the defaults. The rig
    /// sets <see cref="XenbusBackendOptions.BackendDomain"/> itself.
    /// </summary>
    public XenbusBackendOptions? Backend { get; set; }
    /// <summary>
    /// Adjusts frontend i's options after the rig filled them in (e.g. <see cref="BlkFrontOptions.PersistentGrants"/>,
    /// <see cref="BlkFrontOptions.MaxQueues"/>); null: the defaults.
    /// </summary>
    public Action<int, BlkFrontOptions>? ConfigureFrontend { get; set; }
    /// <summary>
    /// <see cref="XenEmulatorOptions.ProtectReadOnlyGrants"/> of the rig's emulator (default true: a tap that writes
    /// into a write request's data faults, as on real Xen). A harness whose guests are its own code (replay) may turn
    /// it off to spare the copy of each read-only page mapped.
    /// </summary>
    public bool ProtectReadOnlyGrants { get; set; } = true;
    /// <summary>
    /// Threaded mode only: run the tap's loop on the emulator's scheduler thread (as deterministic mode does, but in
    /// FIFO order) instead of on a thread of its own, so guests and tap take turns on one thread with no cross-thread
    /// wake-up per batch. Default false (the tap on its own thread, as a real dom0 runs it beside the guests). Work a
    /// terminator hands to other threads (img's I/O worker) still runs there and wakes the loop through the scheduler.
    /// </summary>
    public bool TapOnScheduler { get; set; }
}

/// <summary>
/// A whole emulated system: the emulator with dom0 running a tap (a <see cref="TapRuntime"/> behind the
/// xenbus block backend) and N guest domains each with a connected blkfront. What <c>blktap demo</c>,
/// <c>blktap run</c>, replay and the model properties drive.
/// </summary>
/// <remarks>
/// Threading: in threaded mode, the tap loop runs on its own thread and frontends are used from any
/// thread. In deterministic mode everything runs on the caller's thread inside <see cref="Execute"/>.
/// </remarks>
public sealed class EmulatorRig : IAsyncDisposable
{
    private readonly CancellationTokenSource _cts = new();
    private int _runPosted;

    private TapRuntime? _blkback;
    private XenbusBlockBackend? _blkbackXenbus;
    private XenbusBlockFrontend? _tapFront;
    private int _blkbackPosted;

    private EmulatorRig(XenEmulator emulator, TapRuntime runtime, XenbusBlockBackend backend, EmulatorRigOptions options)
    {
        Emulator = emulator;
        Runtime = runtime;
        Backend = backend;
        Options = options;
    }

    /// <summary>The emulator.</summary>
    public XenEmulator Emulator { get; }
    /// <summary>The tap in dom0.</summary>
    public TapRuntime Runtime { get; }
    /// <summary>The xenbus backend feeding the tap.</summary>
    public XenbusBlockBackend Backend { get; }
    /// <summary>The settings.</summary>
    public EmulatorRigOptions Options { get; }
    /// <summary>The guests' frontends, in domain order.</summary>
    public IReadOnlyList<BlkFront> Frontends { get; private set; } = [];

    /// <summary>
    /// Starts the system: creates the tap (<paramref name="configure"/> registers its hooks), the
    /// backend, the guests, and connects every frontend.
    /// </summary>
    public static async Task<EmulatorRig> StartAsync(EmulatorRigOptions options, Action<TapRuntime> configure)
    {
        if (options.Frontends < 1) throw new ArgumentOutOfRangeException(nameof(options), "at least one frontend");
        var emulator = new XenEmulator(new XenEmulatorOptions
        {
            Mode = options.Deterministic ? SchedulerMode.Deterministic : SchedulerMode.Threaded,
            Seed = options.Seed,
            ProtectReadOnlyGrants = options.ProtectReadOnlyGrants,
        });
        var runtime = new TapRuntime(new TapRuntimeOptions { Name = "rig", Diagnostics = options.Diagnostics });
        configure(runtime);
        var tapDomain = options.BlkbackDevice == null ? emulator.Dom0 : emulator.CreateDomain("tap");
        var offer = options.Backend ?? new XenbusBackendOptions();
        var backend = new XenbusBlockBackend(runtime, emulator.Store, emulator.GrantMapperFor(tapDomain.Id), emulator.EventChannelFactoryFor(tapDomain.Id),
            new XenbusBackendOptions
            {
                BackendDomain = tapDomain.Id,
                MaxRingPageOrder = offer.MaxRingPageOrder,
                FeaturePersistent = offer.FeaturePersistent,
                MaxPersistentGrants = offer.MaxPersistentGrants,
                MaxQueues = offer.MaxQueues,
            });
        var rig = new EmulatorRig(emulator, runtime, backend, options);
        rig.Drive(runtime, () => ref rig._runPosted);
        if (options.BlkbackDevice != null)
        {
            // dom0: a plain blkback (a runtime whose only hook serves the device).
            var blkback = new TapRuntime(new TapRuntimeOptions { Name = "blkback", Diagnostics = options.Diagnostics });
            var serve = new BlockDeviceHook(options.BlkbackDevice);
            blkback.RegisterControlHook("blkback", serve);
            blkback.RegisterRequestHook("blkback", serve);
            rig._blkback = blkback;
            rig.Drive(blkback, () => ref rig._blkbackPosted);
            rig._blkbackXenbus = new XenbusBlockBackend(blkback, emulator.Store, emulator.GrantMapperFor(emulator.Dom0.Id), emulator.EventChannelFactoryFor(emulator.Dom0.Id),
                new XenbusBackendOptions { BackendDomain = emulator.Dom0.Id });
            rig._blkbackXenbus.Start();
            await rig.Execute(async () =>
            {
                XenbusDevices.CreateVbd(emulator.Store, tapDomain.Id, emulator.Dom0.Id, options.DeviceId, "blkback-disk");
                // The tap domain's lower end: the same frontend 'blktap xen serve' runs in dom0
                // (the vbd tap), here over the emulator's gntalloc, evtchn and xenstore.
                rig._tapFront = new XenbusBlockFrontend(emulator.FrontendPlatformFor(tapDomain.Id), XenbusBlockFrontend.PathFor(tapDomain.Id, options.DeviceId));
                await rig._tapFront.ConnectAsync();
            });
            var front = rig._tapFront!;
            runtime.Backend = front;
            // The tap's disks are as large as the real backend's.
            runtime.RegisterControlHook("interpose", Hook.Control(e =>
            {
                if (e.Kind != ControlEventKind.Attach) return;
                e.Session.Sectors = front.Sectors;
                e.Session.ReadOnly = front.IsReadOnly;
                e.Session.SupportsDiscard = front.SupportsDiscard;
                e.Session.SupportsFlush = front.SupportsFlush || front.SupportsBarrier;
            }));
        }
        backend.Start();
        var fronts = new List<BlkFront>();
        await rig.Execute(async () =>
        {
            for (int i = 0; i < options.Frontends; i++)
            {
                var dom = emulator.CreateDomain($"guest{i + 1}");
                // The guests connect to the tap (in dom0, or in its own domain in the interposition placement).
                XenbusDevices.CreateVbd(emulator.Store, dom.Id, tapDomain.Id, options.DeviceId, options.ImageId(i));
                var frontOptions = new BlkFrontOptions
                {
                    Protocol = options.Protocol,
                    RandomFirstSector = options.RandomFirstSector,
                    Seed = options.Seed * 7919 + i,
                };
                options.ConfigureFrontend?.Invoke(i, frontOptions);
                var front = new BlkFront(emulator, dom, options.DeviceId, frontOptions);
                fronts.Add(front);
            }
            rig.Frontends = fronts;
            await Task.WhenAll(fronts.Select(f => f.ConnectAsync()));
        });
        rig.Frontends = fronts;
        return rig;
    }

    private delegate ref int FlagRef();

    private void Drive(TapRuntime runtime, FlagRef posted)
    {
        if (Options.Deterministic || Options.TapOnScheduler)
        {
            var emulator = Emulator;
            runtime.UseExternalDriver(() =>
            {
                if (Interlocked.Exchange(ref posted(), 1) == 0)
                    emulator.Post(() => { Volatile.Write(ref posted(), 0); runtime.RunOnce(); });
            });
        }
        else
        {
            _loops.Add(runtime.RunAsync(_cts.Token));
        }
    }

    private readonly List<Task> _loops = new();

    /// <summary>How long disposing waits for a loop to close its sessions and to stop (generous: a loaded machine is slow, not stuck).</summary>
    private static readonly TimeSpan DisposeDeadline = TimeSpan.FromSeconds(60);

    /// <summary>
    /// Runs <paramref name="work"/> to completion: directly in threaded mode; in deterministic mode as
    /// a task on the emulator's scheduler, driving the scheduler on this thread until it finishes.
    /// </summary>
    public async Task Execute(Func<Task> work)
    {
        if (!Options.Deterministic) { await work(); return; }
        var task = Emulator.Spawn(work);
        if (!Emulator.RunUntil(() => task.IsCompleted) && !task.IsCompleted)
            throw new TimeoutException($"deterministic run (seed {Options.Seed}) went idle before the work finished: a lost notification or a stuck request; " + Describe());
        await task;
    }

    /// <summary>The xenbus states and ring indexes of every device, for failure reports.</summary>
    public string Describe()
    {
        var sb = new System.Text.StringBuilder();
        foreach (var f in Frontends)
            sb.Append($"[{f.FrontendPath} state {XenbusDevices.ReadState(Emulator.Store, f.FrontendPath)} backend {XenbusDevices.ReadState(Emulator.Store, f.BackendPath)} outstanding {f.Outstanding} queued {f.Queued}{(f.IsBroken ? " broken: " + f.BrokenReason : "")}] ");
        sb.Append($"tap in flight {Runtime.InFlight}, pending work {Runtime.HasPendingWork}");
        return sb.ToString();
    }

    /// <inheritdoc/>
    public async ValueTask DisposeAsync()
    {
        foreach (var f in Frontends) f.Dispose();
        Backend.Dispose();
        _tapFront?.Dispose();
        _blkbackXenbus?.Dispose();
        if (!Options.Deterministic)
        {
            // The backends close their sessions on the loops (taps see Disconnect, images flush):
            // wait for that before stopping the loops.
            foreach (var rt in new[] { Runtime, _blkback })
            {
                if (rt == null) continue;
                var closed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                rt.Post(closed.SetResult);
                try { await closed.Task.WaitAsync(DisposeDeadline); }
                catch (TimeoutException) { } // a stuck loop: stop it anyway
            }
        }
        if (Options.Deterministic) { try { Emulator.RunUntilIdle(); } catch (Exception) { } }
        _cts.Cancel();
        foreach (var loop in _loops) await loop.WaitAsync(DisposeDeadline);
        Runtime.Dispose();
        _blkback?.Dispose();
        Emulator.Dispose();
    }
}
