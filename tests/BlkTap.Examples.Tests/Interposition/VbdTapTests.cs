using BlkTap.Chains;
using BlkTap.Emulator;
using BlkTap.Examples;
using BlkTap.Nbd;
using BlkTap.Linux;
using BlkTap.Testing;
using BlkTap.Xen;
using NUnit.Framework;

namespace BlkTap.Examples.Tests.Interposition;

/// <summary>
/// The <c>vbd</c> tap in the emulator, placed as on a real dom0 (the lab's interpose scenario): a guest's
/// disk is served by a chain in dom0 (backend type vbd3) whose lower end is a frontend in dom0 itself,
/// connected to a vbd of dom0 that a plain blkback (backend type vbd, here a runtime serving a memory
/// disk) serves. Both ends grant and map through the emulator's grant tables.
/// </summary>
[TestFixture]
public sealed class VbdTapTests
{
    private const int LowerDevice = 51728; // xvdb
    private const long DiskBytes = 4L << 20;

    /// <summary>A lower request hook that holds requests while closed (to have some in flight).</summary>
    private sealed class Gate : IRequestHook
    {
        private readonly List<TapRequest> _held = new();
        public volatile bool Closed;
        public SemaphoreSlim Held { get; } = new(0);
        public int HeldCount { get { lock (_held) return _held.Count; } }

        public HookResult OnRequest(TapRequest r)
        {
            if (!Closed) return HookResult.Pass;
            lock (_held) _held.Add(r);
            Held.Release();
            return HookResult.Stolen;
        }

        public void ReleaseAll(BlkifStatus status)
        {
            lock (_held)
            {
                foreach (var r in _held) r.Runtime.InjectResponse(r, status);
                _held.Clear();
            }
        }
    }

    private sealed class Lab : IAsyncDisposable
    {
        private readonly CancellationTokenSource _stop = new();
        private readonly List<Task> _loops = new();

        public Lab()
        {
            Emulator = new XenEmulator();
            // dom0's "kernel blkback": a memory disk behind backend/vbd.
            Lower = new MemoryBlockDevice(DiskBytes);
            LowerRuntime = new TapRuntime(new TapRuntimeOptions { Name = "blkback" });
            var serve = new BlockDeviceHook(Lower);
            LowerRuntime.RegisterRequestHook("gate", Gate);
            LowerRuntime.RegisterControlHook("disk", serve);
            LowerRuntime.RegisterRequestHook("disk", serve);
            _loops.Add(LowerRuntime.RunAsync(_stop.Token));
            LowerBackend = new XenbusBlockBackend(LowerRuntime, Emulator.Store, Emulator.GrantMapperFor(0), Emulator.EventChannelFactoryFor(0),
                new XenbusBackendOptions { DeviceType = "vbd" });
            LowerBackend.Start();
            // xl block-attach 0 ...: a vbd whose frontend is dom0 itself.
            LowerPaths = XenbusDevices.CreateVbd(Emulator.Store, 0, 0, LowerDevice, "lower-disk");
            Upper = new TapRuntime(new TapRuntimeOptions { Name = "xen" });
        }

        public XenEmulator Emulator { get; }
        public MemoryBlockDevice Lower { get; }
        public Gate Gate { get; } = new();
        public TapRuntime LowerRuntime { get; }
        public XenbusBlockBackend LowerBackend { get; }
        public VbdPaths LowerPaths { get; }
        public TapRuntime Upper { get; }
        public TapChain? Chain { get; private set; }
        public XenbusBlockBackend? UpperBackend { get; private set; }
        public StringWriter DumpOutput { get; } = new();

        public TapContext Context => new() { Output = DumpOutput, Frontends = Emulator.FrontendPlatformFor(0) };

        /// <summary>Builds the chain (the vbd tap connects here), serves vbd3 from dom0, attaches a guest.</summary>
        public async Task<BlkFront> ServeGuestAsync(params string[] specs)
        {
            Chain = ExampleTaps.CreateRegistry().Build(specs.Select(TapSpec.Parse).ToList(), Context);
            Chain.Register(Upper);
            _loops.Add(Upper.RunAsync(_stop.Token));
            UpperBackend = new XenbusBlockBackend(Upper, Emulator.Store, Emulator.GrantMapperFor(0), Emulator.EventChannelFactoryFor(0),
                new XenbusBackendOptions { DeviceType = "vbd3" });
            UpperBackend.Start();
            var guest = Emulator.CreateDomain("guest");
            var nodes = XenVbdToolstack.WriteAttach(Emulator.Store, new XenVbdAttachment(guest.Id, "xvda", "unused") { DeviceType = "vbd3" });
            var front = new BlkFront(Emulator, guest, nodes.DeviceNumber, new BlkFrontOptions { RandomFirstSector = true, Seed = 5 });
            await Waits.For(front.ConnectAsync(), "the guest's disk to connect through the vbd tap");
            return front;
        }

        public async ValueTask DisposeAsync()
        {
            Gate.ReleaseAll(BlkifStatus.Error);
            UpperBackend?.Dispose();
            Chain?.Dispose();
            LowerBackend.Dispose();
            _stop.Cancel();
            foreach (var loop in _loops) { try { await loop.WaitAsync(Waits.Deadline); } catch (OperationCanceledException) { } }
            Upper.Dispose();
            LowerRuntime.Dispose();
            Emulator.Dispose();
        }
    }

    [Test]
    public async Task Chain_DumpOverVbd_GuestWritesLandInTheLowerDiskAndReadBack()
    {
        await using var lab = new Lab();
        using var front = await lab.ServeGuestAsync("dump", $"vbd:dev=xvdb");
        Assert.That(front.Sectors, Is.EqualTo((ulong)(DiskBytes / 512)), "the guest sees the lower disk's size");
        var random = new Random(11);
        var model = new byte[DiskBytes];
        for (int i = 0; i < 60; i++)
        {
            int sectors = random.Next(1, 89); // up to 11 pages: one ring request above, up to 2 below when unaligned
            ulong sector = (ulong)random.Next(0, (int)(DiskBytes / 512) - sectors);
            var data = new byte[sectors * 512];
            random.NextBytes(data);
            Assert.That(await Waits.For(front.WriteAsync(sector, data), "a write"), Is.EqualTo(BlkifStatus.Okay));
            data.CopyTo(model, (long)sector * 512);
        }
        Assert.That(await Waits.For(front.FlushAsync(), "a flush"), Is.EqualTo(BlkifStatus.Okay));
        var lower = new byte[DiskBytes];
        Assert.That(lab.Lower.Read(0, lower), Is.EqualTo(BlkifStatus.Okay));
        Assert.That(lower.AsSpan().SequenceEqual(model), Is.True, "the lower disk holds exactly what the guest wrote");
        var back = new byte[64 * 512];
        for (int i = 0; i < 20; i++)
        {
            ulong sector = (ulong)random.Next(0, (int)(DiskBytes / 512) - 64);
            Assert.That(await Waits.For(front.ReadAsync(sector, back), "a read"), Is.EqualTo(BlkifStatus.Okay));
            Assert.That(back.AsSpan().SequenceEqual(model.AsSpan((int)sector * 512, back.Length)), Is.True, $"read at {sector} equals the model");
        }
        Assert.That(lab.DumpOutput.ToString(), Does.Contain(" Write sector="), "the dump tap above saw the requests");
        var tap = (VbdTap)lab.Chain![^1];
        Assert.That(tap.Frontend!.RequestsSent, Is.GreaterThanOrEqualTo(80));
    }

    [Test]
    public async Task Chain_CowOverVbd_WritesStayInTheOverlayAndTheLowerDiskIsUntouched()
    {
        await using var lab = new Lab();
        var original = new byte[DiskBytes];
        new Random(3).NextBytes(original);
        Assert.That(lab.Lower.Write(0, original), Is.EqualTo(BlkifStatus.Okay));
        var overlay = Path.Combine(Path.GetTempPath(), $"vbdtap-{Guid.NewGuid():N}.cow");
        try
        {
            using var front = await lab.ServeGuestAsync($"cow:overlay={overlay}", "vbd:dev=51728");
            var data = new byte[8 * 512];
            new Random(4).NextBytes(data);
            Assert.That(await Waits.For(front.WriteAsync(100, data), "a write"), Is.EqualTo(BlkifStatus.Okay));
            var back = new byte[24 * 512];
            Assert.That(await Waits.For(front.ReadAsync(92, back), "a read"), Is.EqualTo(BlkifStatus.Okay));
            Assert.That(back.AsSpan(0, 8 * 512).SequenceEqual(original.AsSpan(92 * 512, 8 * 512)), Is.True, "below the write: the lower disk's data");
            Assert.That(back.AsSpan(8 * 512, 8 * 512).SequenceEqual(data), Is.True, "the write, from the overlay");
            Assert.That(back.AsSpan(16 * 512).SequenceEqual(original.AsSpan(108 * 512, 8 * 512)), Is.True, "above the write: the lower disk's data");
            var lower = new byte[DiskBytes];
            lab.Lower.Read(0, lower);
            Assert.That(lower.AsSpan().SequenceEqual(original), Is.True, "the lower disk is untouched");
        }
        finally
        {
            await lab.DisposeAsync();
            File.Delete(overlay);
        }
    }

    [Test]
    public async Task LowerBackendCloses_RequestsInFlightAndLaterGetError_NothingHangs()
    {
        await using var lab = new Lab();
        using var front = await lab.ServeGuestAsync("vbd:dev=xvdb");
        lab.Gate.Closed = true;
        var read = front.ReadAsync(0, new byte[4096]);
        var write = front.WriteAsync(64, new byte[8192]);
        Waits.ForSignal(lab.Gate.Held, () => lab.Gate.HeldCount == 2, "both requests to reach the lower backend");

        XenbusDevices.WriteState(lab.Emulator.Store, lab.LowerPaths.BackendPath, XenbusState.Closing);

        Assert.That(await Waits.For(read, "the in-flight read"), Is.EqualTo(BlkifStatus.Error));
        Assert.That(await Waits.For(write, "the in-flight write"), Is.EqualTo(BlkifStatus.Error));
        Assert.That(await Waits.For(front.ReadAsync(8, new byte[512]), "a read after"), Is.EqualTo(BlkifStatus.Error));
        var tap = (VbdTap)lab.Chain![^1];
        Assert.That(tap.Frontend!.FailureReason, Does.Contain("closed the device"));
        Assert.That(XenbusDevices.ReadState(lab.Emulator.Store, lab.LowerPaths.FrontendPath), Is.EqualTo(XenbusState.Closed), "the frontend answered with Closed");
        Assert.That(lab.Emulator.Faults, Is.Empty);
    }

    [Test]
    public async Task Dispose_ChainStops_FrontendClosesAndTheLowerVbdCanBeConnectedAgain()
    {
        await using var lab = new Lab();
        var platform = lab.Emulator.FrontendPlatformFor(0);
        var path = XenbusBlockFrontend.PathFor(0, LowerDevice);
        using (var first = new XenbusBlockFrontend(platform, path))
        {
            await Waits.For(first.ConnectAsync(), "the first connection");
            await Waits.For(first.DisconnectAsync(), "the first disconnection");
        }
        Assert.That(XenbusDevices.ReadState(lab.Emulator.Store, path), Is.EqualTo(XenbusState.Closed));
        Waits.ForStore(lab.Emulator.Store, () => XenbusDevices.ReadState(lab.Emulator.Store, lab.LowerPaths.BackendPath) is XenbusState.Closed or XenbusState.InitWait,
            "the lower backend to let go", lab.LowerPaths.BackendPath);
        using var second = new XenbusBlockFrontend(platform, path);
        await Waits.For(second.ConnectAsync(), "the second connection");
        Assert.That(second.IsConnected, Is.True);
        Assert.That(lab.Emulator.Dom0.Grants.ActiveCount, Is.GreaterThan(0));
    }

    [Test]
    public async Task Chain_VbdServedOverNbd_MegabyteRequestsGoAsIndirectRingRequestsAndLandExactly()
    {
        // An NBD client's 1 MiB requests reach the chain as one request with segments longer than a page: the
        // frontend walks them page by page and splits them into indirect ring requests of 32 pages, then answers once.
        await using var lab = new Lab();
        using var chain = ExampleTaps.CreateRegistry().Build([TapSpec.Parse("vbd:dev=xvdb,depth=4")], lab.Context);
        using var runtime = new TapRuntime(new TapRuntimeOptions { Name = "nbd-vbd", Waiter = new EpollLoopWaiter() });
        chain.Register(runtime);
        using var stop = new CancellationTokenSource();
        var loop = runtime.RunAsync(stop.Token);
        var dir = Directory.CreateTempSubdirectory("vbdtap-nbd").FullName;
        var model = new byte[DiskBytes];
        try
        {
            await using (var server = new NbdServer(new NbdExportProvider(runtime, null)))
            {
                var uri = NbdUri.ForUnix(Path.Combine(dir, "s.sock"));
                server.ListenUnix(uri.SocketPath!);
                using var client = new NbdBlockingClient(uri) { Timeout = Waits.Deadline };
                Assert.That(client.Client.ExportSize, Is.EqualTo((ulong)DiskBytes));
                var random = new Random(21);
                foreach (var (offset, length) in new[] { (4096L + 512, 1 << 20), (0L, 1 << 20), (3L << 20, 1 << 20), (2L << 20, 45 * 4096) })
                {
                    var data = new byte[length];
                    random.NextBytes(data);
                    Assert.That(client.Write((ulong)offset, data), Is.EqualTo(0), $"write {length} at {offset}");
                    data.CopyTo(model, offset);
                }
                Assert.That(client.Flush(), Is.EqualTo(0));
                var back = new byte[1 << 20];
                Assert.That(client.Read(4096 + 512, back), Is.EqualTo(0));
                Assert.That(back.AsSpan().SequenceEqual(model.AsSpan(4096 + 512, 1 << 20)), Is.True, "a 1 MiB read equals the model");
            }
            var lower = new byte[DiskBytes];
            lab.Lower.Read(0, lower);
            Assert.That(lower.AsSpan().SequenceEqual(model), Is.True, "the lower disk holds exactly what the NBD client wrote");
            var tap = (VbdTap)chain[0];
            // The emulated backend offers indirect requests: 32 pages each (the default), so 3 x 1 MiB + 180 KiB
            // written and 1 MiB read take at least (4 x 256 + 45) / 32 ring requests, most of them indirect.
            Assert.That(tap.Frontend!.IndirectSegments, Is.EqualTo(32));
            Assert.That(tap.Frontend.RequestsSent, Is.GreaterThanOrEqualTo((4L * 256 + 45) / 32));
            Assert.That(tap.Frontend.IndirectRequestsSent, Is.GreaterThanOrEqualTo(4L * 256 / 32));
        }
        finally
        {
            stop.Cancel();
            try { await loop.WaitAsync(Waits.Deadline); } catch (OperationCanceledException) { }
            Directory.Delete(dir, true);
        }
    }

    [Test]
    public void Create_WithoutAFrontendPlatform_SaysItNeedsXen()
    {
        var e = Assert.Throws<ChainSpecException>(() => ExampleTaps.CreateRegistry().Build([TapSpec.Parse("vbd:dev=xvdb")], new TapContext { Output = TextWriter.Null }));
        Assert.That(e!.Message, Does.Contain("xen serve"));
    }

    [Test]
    public void Create_CheckOnly_ValidatesWithoutConnecting()
    {
        using var chain = ExampleTaps.CreateRegistry().Build([TapSpec.Parse("vbd:dev=xvdb")], new TapContext { Output = TextWriter.Null, CheckOnly = true });
        Assert.That(((VbdTap)chain[0]).Frontend, Is.Null);
    }

    [TestCase("vbd", "missing option 'dev=...'")]
    [TestCase("vbd:dev=hda", "not an xvdX or sdX name")]
    [TestCase("vbd:dev=xvdb,depth=0", "depth=0")]
    [TestCase("vbd:dev=xvdb,ring-order=9", "ring-order=9")]
    [TestCase("vbd:dev=xvdb,domain=40000", "domain=40000")]
    public void Create_BadOption_NamesIt(string spec, string expected)
    {
        var e = Assert.Throws<ChainSpecException>(() => ExampleTaps.CreateRegistry().Build([TapSpec.Parse(spec)], new TapContext { Output = TextWriter.Null, CheckOnly = true }));
        Assert.That(e!.Message, Does.Contain(expected));
    }

    [Test]
    public async Task Create_NoSuchVbd_NamesTheMissingNode()
    {
        await using var lab = new Lab();
        var e = Assert.Throws<ChainSpecException>(() => ExampleTaps.CreateRegistry().Build([TapSpec.Parse("vbd:dev=xvdc")], lab.Context));
        Assert.That(e!.Message, Does.Contain("/local/domain/0/device/vbd/51744/backend does not exist"));
    }

    [Test]
    public async Task Create_BackendNeverAnswers_TimesOutWithTheBackendPath()
    {
        await using var lab = new Lab();
        // A vbd whose backend directory nobody serves (another backend type): the handshake never starts.
        var paths = XenbusDevices.CreateVbd(lab.Emulator.Store, 0, 0, 51744, "nobody");
        lab.Emulator.Store.Write(paths.FrontendPath + "/backend", "/local/domain/0/backend/qdisk/0/51744");
        var e = Assert.Throws<ChainSpecException>(() => ExampleTaps.CreateRegistry().Build([TapSpec.Parse("vbd:dev=xvdc,timeout=1")], lab.Context));
        Assert.That(e!.Message, Does.Contain("did not connect within 1 s").And.Contain("qdisk"));
    }
}
