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
    /// <summary>Runtime diagnostics sink.</summary>
    public Action<TapDiagnostic>? Diagnostics { get; set; }
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
    private Task? _loop;
    private int _runPosted;

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
        var emulator = options.Deterministic ? XenEmulator.CreateDeterministic(options.Seed) : new XenEmulator();
        var runtime = new TapRuntime(new TapRuntimeOptions { Name = "rig", Diagnostics = options.Diagnostics });
        configure(runtime);
        var backend = new XenbusBlockBackend(runtime, emulator.Store, emulator.GrantMapperFor(emulator.Dom0.Id), emulator.EventChannelFactoryFor(emulator.Dom0.Id),
            new XenbusBackendOptions { BackendDomain = emulator.Dom0.Id });
        var rig = new EmulatorRig(emulator, runtime, backend, options);
        if (options.Deterministic)
        {
            runtime.UseExternalDriver(() =>
            {
                if (Interlocked.Exchange(ref rig._runPosted, 1) == 0)
                    emulator.Post(() => { Volatile.Write(ref rig._runPosted, 0); runtime.RunOnce(); });
            });
        }
        else
        {
            rig._loop = runtime.RunAsync(rig._cts.Token);
        }
        backend.Start();
        var fronts = new List<BlkFront>();
        await rig.Execute(async () =>
        {
            for (int i = 0; i < options.Frontends; i++)
            {
                var dom = emulator.CreateDomain($"guest{i + 1}");
                XenbusDevices.CreateVbd(emulator.Store, dom.Id, emulator.Dom0.Id, options.DeviceId, options.ImageId(i));
                var front = new BlkFront(emulator, dom, options.DeviceId, new BlkFrontOptions
                {
                    Protocol = options.Protocol,
                    RandomFirstSector = options.RandomFirstSector,
                    Seed = options.Seed * 7919 + i,
                });
                fronts.Add(front);
            }
            await Task.WhenAll(fronts.Select(f => f.ConnectAsync()));
        });
        rig.Frontends = fronts;
        return rig;
    }

    /// <summary>
    /// Runs <paramref name="work"/> to completion: directly in threaded mode; in deterministic mode as
    /// a task on the emulator's scheduler, driving the scheduler on this thread until it finishes.
    /// </summary>
    public async Task Execute(Func<Task> work)
    {
        if (!Options.Deterministic) { await work(); return; }
        var task = Emulator.Spawn(work);
        if (!Emulator.RunUntil(() => task.IsCompleted) && !task.IsCompleted)
            throw new TimeoutException($"deterministic run (seed {Options.Seed}) went idle before the work finished: a lost notification or a stuck request");
        await task;
    }

    /// <inheritdoc/>
    public async ValueTask DisposeAsync()
    {
        foreach (var f in Frontends) f.Dispose();
        Backend.Dispose();
        if (Options.Deterministic) { try { Emulator.RunUntilIdle(); } catch (Exception) { } }
        _cts.Cancel();
        if (_loop != null) await _loop.WaitAsync(TimeSpan.FromSeconds(10));
        Runtime.Dispose();
        Emulator.Dispose();
    }
}
