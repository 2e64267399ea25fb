using System.Collections.Concurrent;
using BlkTap.Testing;
using BlkTap.Xen;
using NUnit.Framework;

namespace BlkTap.Xen.Tests.Advisories;

/// <summary>
/// The advisory tests' system on a real dom0: our <see cref="XenbusBlockBackend"/> on the real xenstore, gntdev and
/// evtchn (a tap of an inspect hook, then a memory disk), under a private device type so no toolstack's device is
/// touched, and hostile or honest frontends that dom0 plays itself (<see cref="XenRawFrontend"/>: gntalloc pages and
/// unbound event channels offered to dom0). The grant mapper and the backend's xenstore connection can be wrapped, so a
/// test acts at the moment the backend maps or sees a watch event. The emulator's twin is
/// <c>tests/BlkTap.Abstractions.Tests/Advisories/AdvisoryRig.cs</c>.
/// </summary>
/// <remarks>Threading: create, use and dispose from one test thread; the hooks run on the tap's loop thread.</remarks>
internal sealed class XenAdvisoryRig : IDisposable
{
    /// <summary>The backend's device type: a private one, so `xen serve` (vbd3) and blkback (vbd) never see these devices.</summary>
    public const string DeviceType = "vbd3-xsatest";

    public const long DiskBytes = 8L << 20;

    private readonly CancellationTokenSource _cts = new();
    private readonly List<XenRawFrontend> _frontends = [];
    private Task _loop = Task.CompletedTask;
    private XenStore _backendStore = null!;
    private bool _disposed;

    public required TapRuntime Runtime { get; init; }
    public required MemoryBlockDevice Disk { get; init; }
    public required GntdevGrantMapper Gntdev { get; init; }
    public required GntallocGrantIssuer Issuer { get; init; }
    /// <summary>The test's own xenstore connection (the frontends' and the toolstack's writes).</summary>
    public required XenStore Store { get; init; }
    public XenbusBlockBackend Backend { get; private set; } = null!;
    public ConcurrentQueue<TapDiagnostic> Diagnostics { get; } = new();

    /// <summary>The request hook's inspector (loop thread; null: pass everything).</summary>
    public Func<TapRequest, HookResult>? Inspect { get; set; }

    /// <summary>Ignores the test unless this is a Xen dom0 with gntdev and gntalloc (the lab's `tests` scenario).</summary>
    public static void RequireXen()
    {
        if (!File.Exists("/dev/xen/gntdev")) Assert.Ignore("needs a Xen dom0: /dev/xen/gntdev not found");
        if (!File.Exists("/dev/xen/gntalloc")) Assert.Ignore("needs /dev/xen/gntalloc: modprobe xen-gntalloc");
    }

    /// <summary>
    /// Starts the tap and the backend; <paramref name="wrapMapper"/> and <paramref name="wrapStore"/> may put a test's
    /// own layer in front of gntdev and the backend's xenstore connection.
    /// </summary>
    public static XenAdvisoryRig Start(Func<IGrantMapper, IGrantMapper>? wrapMapper = null, Func<IXenStore, IXenStore>? wrapStore = null)
    {
        var disk = new MemoryBlockDevice(DiskBytes);
        XenAdvisoryRig? rig = null;
        var runtime = new TapRuntime(new TapRuntimeOptions { Name = "xsa", Diagnostics = d => rig?.Diagnostics.Enqueue(d) });
        runtime.RegisterRequestHook("inspect", Hook.Request(r => rig?.Inspect?.Invoke(r) ?? HookResult.Pass));
        var serve = new BlockDeviceHook(disk);
        runtime.RegisterControlHook("mem", serve);
        runtime.RegisterRequestHook("mem", serve);
        rig = new XenAdvisoryRig
        {
            Runtime = runtime, Disk = disk, Gntdev = new GntdevGrantMapper(), Issuer = GntallocGrantIssuer.Open(), Store = new XenStore(),
        };
        // A previous run that died leaves its directories: start from none.
        rig.Store.Remove($"/local/domain/0/backend/{DeviceType}");
        rig._backendStore = new XenStore();
        rig.Backend = new XenbusBlockBackend(runtime, wrapStore?.Invoke(rig._backendStore) ?? rig._backendStore,
            wrapMapper?.Invoke(rig.Gntdev) ?? rig.Gntdev, new XenEventChannelFactory(), new XenbusBackendOptions { DeviceType = DeviceType });
        rig._loop = runtime.RunAsync(rig._cts.Token);
        rig.Backend.Start();
        return rig;
    }

    /// <summary>Writes a new device for dom0 as its frontend (<paramref name="vdev"/>: xvdq, xvdr...) and waits for the backend's InitWait.</summary>
    public XenRawFrontend Attach(string vdev, BlkifProtocol protocol = BlkifProtocol.X86_64)
    {
        var frontend = XenRawFrontend.Attach(Store, Issuer, DeviceType, vdev, protocol);
        _frontends.Add(frontend);
        frontend.WaitBackend(XenbusState.InitWait, $"{vdev}: the backend's InitWait");
        return frontend;
    }

    /// <summary>Attaches and connects a frontend (Initialised, then Connected once the backend is).</summary>
    public XenRawFrontend Connect(string vdev, BlkifProtocol protocol = BlkifProtocol.X86_64)
    {
        var frontend = Attach(vdev, protocol);
        frontend.Connect();
        return frontend;
    }

    /// <summary>The backend's open session of <paramref name="frontend"/> (read on the loop).</summary>
    public RingSession SessionOf(XenRawFrontend frontend) =>
        Waits.OnLoop(Runtime, () => Backend.Sessions[frontend.Nodes.BackendPath]);

    /// <summary>Diagnostics that carry an exception (a crash inside the loop).</summary>
    public IEnumerable<TapDiagnostic> Crashes => Diagnostics.Where(d => d.Exception != null);

    public static BlkifRequest Rw(BlkifOperation op, ulong sector, params BlkifSegment[] segments)
    {
        var r = new BlkifRequest { Operation = op, Sector = sector, SegmentCount = segments.Length };
        for (int i = 0; i < segments.Length; i++) r.Segments[i] = segments[i];
        return r;
    }

    /// <summary>Closes the backend's devices first (it unmaps), then the frontends' grants and channels, then the tap.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        Backend.Dispose();
        try { Waits.OnLoop(Runtime, () => 0); } catch (AssertionException) { }
        foreach (var f in _frontends) f.Dispose();
        _cts.Cancel();
        try { _loop.Wait(Waits.Deadline); } catch (AggregateException) { }
        Store.Remove($"/local/domain/0/backend/{DeviceType}");
        Runtime.Dispose();
        Gntdev.Dispose();
        Issuer.Dispose();
        _backendStore.Dispose();
        Store.Dispose();
    }
}
