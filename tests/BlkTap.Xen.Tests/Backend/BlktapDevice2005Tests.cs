using System.Buffers.Binary;
using System.Collections.Concurrent;
using BlkTap.Testing;
using BlkTap.Xen;
using NUnit.Framework;

namespace BlkTap.Xen.Tests.Backend;

/// <summary>
/// The 2005 /dev/blktap device against a simulated 2005 driver (<see cref="SimulatedBlktapKernel"/>): control
/// messages, id translation, the fe and be rings, PROBE, read-only write data, hostile kernel input.
/// </summary>
[TestFixture]
public sealed class BlktapDevice2005Tests
{
    private const int DiskSectors = 2048;

    private sealed class Harness : IDisposable
    {
        private readonly CancellationTokenSource _cts = new();
        private readonly Task _loop;

        public Harness(Action<TapRuntime>? configure = null, BlktapDevice2005Options? options = null, bool setSize = true, Action<SimulatedBlktapKernel>? beforeStart = null)
        {
            Device = new FakeBlktapDevice();
            Kernel = new SimulatedBlktapKernel(Device, DiskSectors) { GrantBuild = options?.WriteDataWritable != true };
            Runtime = new TapRuntime(new TapRuntimeOptions { Diagnostics = Diagnostics.Enqueue });
            Runtime.RegisterControlHook("size", Hook.Control(e =>
            {
                Control.Enqueue(e);
                if (e.Kind == ControlEventKind.Attach && setSize) e.Session.Sectors = DiskSectors;
                ControlSeen.Release();
            }));
            configure?.Invoke(Runtime);
            Tap = new BlktapDevice2005(Runtime, Device, options);
            beforeStart?.Invoke(Kernel);
            Tap.Start();
            _loop = Runtime.RunAsync(_cts.Token);
        }

        public FakeBlktapDevice Device { get; }
        public SimulatedBlktapKernel Kernel { get; }
        public TapRuntime Runtime { get; }
        public BlktapDevice2005 Tap { get; }
        public ConcurrentQueue<TapDiagnostic> Diagnostics { get; } = new();
        public ConcurrentQueue<ControlEvent> Control { get; } = new();
        public SemaphoreSlim ControlSeen { get; } = new(0);

        public void Send(BlktapControlMessage m)
        {
            var bytes = new byte[64];
            m.Encode(bytes);
            Kernel.Control(bytes);
        }

        /// <summary>The controller's sequence for a new disk: CREATE, VBD_CREATE, CONNECT; waits for Attach and Connect.</summary>
        public void AttachAndConnect(ushort domid, bool readOnly = false)
        {
            Send(BlktapControlMessage.BlkifBackend(BlkifBackendMessage.Create, domid));
            Send(BlktapControlMessage.VbdCreate(domid, 0, 0x0301, readOnly));
            Send(BlktapControlMessage.BlkifBackend(BlkifBackendMessage.Connect, domid));
            WaitControl(e => e.Kind == ControlEventKind.Connect && e.Session.DomainId == domid);
        }

        public void WaitControl(Func<ControlEvent, bool> predicate)
        {
            var deadline = Environment.TickCount64 + (long)Waits.Deadline.TotalMilliseconds;
            while (!Control.Any(predicate))
                if (!ControlSeen.Wait((int)Math.Max(1, deadline - Environment.TickCount64)) && Environment.TickCount64 > deadline)
                    Assert.Fail("the expected control event did not happen: " + string.Join("; ", Diagnostics));
        }

        public (short Status, byte[]? Data) Io(ushort domid, ulong guestId, byte op, ulong sector, byte[] data)
        {
            Assert.That(Kernel.GuestRequest(domid, guestId, op, sector, data), Is.Not.Null, "the driver dropped the request");
            return Kernel.WaitGuest(domid, guestId);
        }

        public void Dispose()
        {
            _cts.Cancel();
            _loop.Wait(Waits.Deadline);
            Tap.Dispose();
            Runtime.Dispose();
            Device.Dispose();
        }
    }

    private static byte[] Random(int bytes, int seed)
    {
        var data = new byte[bytes];
        new Random(seed).NextBytes(data);
        return data;
    }

    [Test]
    public void Start_MapsExactly771PagesAndSetsInterposeMode()
    {
        using var h = new Harness();
        Assert.That(h.Device.MapRequests, Is.EqualTo(new[] { 771L * 4096 }));
        Assert.That(h.Device.Ioctls.First(), Is.EqualTo((3u, (nuint)3)));
        Assert.That(h.Kernel.Mode, Is.EqualTo(3u));
        Assert.That(h.Runtime.Backend, Is.SameAs(h.Tap));
    }

    [Test]
    public void Dispose_AfterServing_ReturnsTheDriverToPassthrough()
    {
        var h = new Harness();
        h.Dispose();
        Assert.That(h.Device.Ioctls.Last(), Is.EqualTo((3u, (nuint)0)));
        Assert.That(h.Kernel.Mode, Is.EqualTo(0u));
    }

    [Test]
    public void Options_InvalidMode_RefusedBeforeTheKernelSeesIt()
    {
        using var device = new FakeBlktapDevice();
        _ = new SimulatedBlktapKernel(device, 8);
        using var runtime = new TapRuntime();
        Assert.Throws<ArgumentOutOfRangeException>(() => new BlktapDevice2005(runtime, device, new BlktapDevice2005Options { Mode = 5 }));
        Assert.That(device.Kernel.Ioctl(3, 5), Is.EqualTo(515), "the driver's SETMODE falls through to -ENOIOCTLCMD");
    }

    [Test]
    public void PassedRequest_ThroughHooksAndBackend_GuestGetsItsOwnIdBack()
    {
        var requestIds = new ConcurrentQueue<ulong>();
        var responseIds = new ConcurrentQueue<ulong>();
        using var h = new Harness(rt =>
        {
            rt.RegisterRequestHook("see", Hook.Request(r => { requestIds.Enqueue(r.Id); return HookResult.Pass; }));
            rt.RegisterResponseHook("see", Hook.Response(r => responseIds.Enqueue(r.Id)));
        });
        h.AttachAndConnect(5);
        var data = Random(8192, 5);
        ulong? wireId = h.Kernel.GuestRequest(5, 0xDEADBEEF01, 1, 100, data);
        Assert.That(h.Kernel.WaitGuest(5, 0xDEADBEEF01).Status, Is.EqualTo(0));
        Assert.That(wireId, Is.EqualTo((5UL << 16) | 0), "the driver's id: (domid << 16) | active slot 0");
        Assert.That(h.Kernel.Disk.AsSpan(100 * 512, 8192).ToArray(), Is.EqualTo(data));

        var read = h.Io(5, 77, 0, 100, new byte[8192]);
        Assert.That(read.Status, Is.EqualTo(0));
        Assert.That(read.Data, Is.EqualTo(data));
        Assert.That(requestIds, Is.EqualTo(new[] { 5UL << 16, (5UL << 16) | 1 }), "hooks see the driver's ids; slots come from the driver's FIFO free ring");
        Assert.That(h.Kernel.BackendSaw, Is.EqualTo(requestIds), "the be ring carried the same ids");
        Assert.That(responseIds, Is.EqualTo(requestIds));
        Assert.That((h.Kernel.ProtocolViolations, h.Kernel.ReadOnlyViolations, h.Kernel.Dropped), Is.EqualTo((0, 0, 0)));
    }

    [FsCheck.NUnit.Property(MaxTest = 10)]
    public bool ReadsAndWrites_TwoDomainsThroughAWatchingHook_MatchTheModel(byte[] seeds)
    {
        long bytesSeen = 0;
        using var h = new Harness(rt => rt.RegisterRequestHook("watch", Hook.Request(r =>
        {
            for (int s = 0; s < r.SegmentCount; s++) bytesSeen += r.SegmentData(s).Length; // reads write data only
            return HookResult.Pass;
        })));
        h.AttachAndConnect(2);
        h.AttachAndConnect(3);
        var model = new byte[DiskSectors * 512];
        var rnd = new Random(seeds.Length == 0 ? 1 : seeds[0] * 257 + seeds.Length);
        int ops = Math.Min(seeds.Length + 4, 24);
        for (int i = 0; i < ops; i++)
        {
            ushort dom = (ushort)(2 + i % 2);
            int pages = rnd.Next(1, 12);
            ulong sector = (ulong)rnd.Next(0, DiskSectors - pages * 8);
            if (rnd.Next(2) == 0)
            {
                var data = Random(pages * 4096, rnd.Next());
                Assert.That(h.Io(dom, (ulong)i, 1, sector, data).Status, Is.EqualTo(0), string.Join("; ", h.Diagnostics));
                data.CopyTo(model, (int)sector * 512);
            }
            else
            {
                var r = h.Io(dom, (ulong)i, 0, sector, new byte[pages * 4096]);
                Assert.That(r.Status, Is.EqualTo(0));
                Assert.That(r.Data, Is.EqualTo(model.AsSpan((int)sector * 512, pages * 4096).ToArray()), $"read {i}");
            }
        }
        Assert.That((h.Kernel.ProtocolViolations, h.Kernel.ReadOnlyViolations, h.Kernel.Dropped), Is.EqualTo((0, 0, 0)));
        Assert.That(h.Diagnostics.Where(d => d.Level != TapDiagnosticLevel.Information), Is.Empty);
        return bytesSeen > 0;
    }

    private static void Invert(Span<byte> bytes)
    {
        for (int i = 0; i < bytes.Length; i++) bytes[i] = (byte)~bytes[i];
    }

    private static void RegisterInverter(TapRuntime rt)
    {
        rt.RegisterRequestHook("invert", Hook.Request(r =>
        {
            if (r.Operation == BlkifOperation.Write) for (int s = 0; s < r.SegmentCount; s++) Invert(r.SegmentData(s));
            return HookResult.Pass;
        }));
        rt.RegisterResponseHook("invert", Hook.Response(r =>
        {
            if (r.Operation == BlkifOperation.Read && r.Status == BlkifStatus.Okay) for (int s = 0; s < r.SegmentCount; s++) Invert(r.SegmentData(s));
        }));
    }

    [Test]
    public void WriteHookChangingData_GrantBuild_RefusedAndGrantedPagesUntouched()
    {
        using var h = new Harness(RegisterInverter);
        h.AttachAndConnect(2);
        var data = Random(4096, 9);
        Assert.That(h.Io(2, 1, 1, 8, data).Status, Is.EqualTo(-1), "a change to write data cannot reach the backend");
        Assert.That(h.Kernel.ReadOnlyViolations, Is.Zero, "the tap never wrote into the read-only granted pages");
        Assert.That(h.Kernel.BackendSaw, Is.Empty);
        Assert.That(h.Kernel.Disk.AsSpan(8 * 512, 4096).ToArray(), Is.All.EqualTo(0));
        Assert.That(h.Diagnostics.Any(d => d.Message.Contains("read-only")), Is.True);
    }

    [FsCheck.NUnit.Property(MaxTest = 8)]
    public bool WriteHookChangingData_WritableBuild_DiskHoldsTheInverseAndReadsComeBackAsWritten(byte[] seeds)
    {
        using var h = new Harness(RegisterInverter, new BlktapDevice2005Options { WriteDataWritable = true });
        h.AttachAndConnect(2);
        var rnd = new Random(seeds.Length == 0 ? 1 : seeds[0] * 131 + seeds.Length);
        for (int i = 0; i < Math.Min(seeds.Length + 2, 12); i++)
        {
            int pages = rnd.Next(1, 12);
            ulong sector = (ulong)rnd.Next(0, DiskSectors - pages * 8);
            var data = Random(pages * 4096, rnd.Next());
            Assert.That(h.Io(2, (ulong)(2 * i), 1, sector, (byte[])data.Clone()).Status, Is.EqualTo(0));
            var onDisk = h.Kernel.Disk.AsSpan((int)sector * 512, data.Length).ToArray();
            Invert(onDisk);
            Assert.That(onDisk, Is.EqualTo(data));
            Assert.That(h.Io(2, (ulong)(2 * i + 1), 0, sector, new byte[data.Length]).Data, Is.EqualTo(data));
        }
        return h.Kernel.ProtocolViolations == 0;
    }

    [Test]
    public void RespondHook_Terminates_AnsweredOnFeRingWithoutKickBe()
    {
        using var h = new Harness(rt => rt.RegisterRequestHook("terminate", Hook.Request(r =>
        {
            if (r.Operation == BlkifOperation.Read) for (int s = 0; s < r.SegmentCount; s++) r.SegmentData(s).Fill(0xAB);
            r.Status = BlkifStatus.Okay;
            return HookResult.Respond;
        })));
        h.AttachAndConnect(7);
        var r = h.Io(7, 0x1234, 0, 0, new byte[4096]);
        Assert.That(r.Status, Is.EqualTo(0));
        Assert.That(r.Data, Is.All.EqualTo(0xAB));
        Assert.That(h.Kernel.BackendSaw, Is.Empty);
        Assert.That(h.Device.Ioctls.Any(i => i.Command == 2), Is.False);
        Assert.That(h.Device.Ioctls.Any(i => i.Command == 1), Is.True);
    }

    [Test]
    public void Probe_ChainSetTheSize_AnsweredWithOneVdiskOfTheSession()
    {
        using var h = new Harness();
        h.AttachAndConnect(4, readOnly: true);
        var r = h.Io(4, 9, 2, 0, new byte[4096]);
        Assert.That(r.Status, Is.EqualTo(1), "a PROBE's status is the number of vdisk_t");
        var v = r.Data!;
        Assert.That((BinaryPrimitives.ReadUInt64LittleEndian(v), BinaryPrimitives.ReadUInt16LittleEndian(v.AsSpan(8)),
            BinaryPrimitives.ReadUInt16LittleEndian(v.AsSpan(10)), BinaryPrimitives.ReadUInt16LittleEndian(v.AsSpan(12))),
            Is.EqualTo(((ulong)DiskSectors, (ushort)0x0301, (ushort)4, (ushort)512)));
        Assert.That(h.Kernel.BackendSaw, Is.Empty);
    }

    [Test]
    public void Probe_NoSizeFromTheChain_ForwardedWithTheCookieToTheBackend()
    {
        using var h = new Harness(setSize: false);
        h.AttachAndConnect(4);
        h.Kernel.BackendVdevice = 0x0302;
        var r = h.Io(4, 9, 2, 0, new byte[8192]);
        Assert.That(r.Status, Is.EqualTo(1));
        Assert.That(BinaryPrimitives.ReadUInt16LittleEndian(r.Data.AsSpan(8)), Is.EqualTo(0x0302));
        Assert.That(h.Kernel.CookiesSeen, Is.EqualTo(1), "the driver's BLKTAP_COOKIE travels to the backend untouched");
    }

    [Test]
    public void ControlMessages_CreateVbdConnectDisconnect_DriveTheSessionAndAdvanceRspProd()
    {
        using var h = new Harness();
        h.AttachAndConnect(3, readOnly: true);
        var session = (BlktapDomainSession)h.Control.First().Session;
        Assert.That((session.VirtualDevice, session.ReadOnly, session.BlkifHandle), Is.EqualTo(((ushort?)0x0301, true, 0u)));
        var bytes = new byte[64];
        new BlktapControlMessage { Type = 2 }.Encode(bytes); // CMSG_BLKIF_FE: the driver never copies it; ignored
        h.Kernel.Control(bytes);
        h.Send(BlktapControlMessage.BlkifBackend(BlkifBackendMessage.Disconnect, 3));
        h.WaitControl(e => e.Kind == ControlEventKind.Disconnect);
        Assert.That(h.Control.Select(e => e.Kind), Is.EqualTo(new[] { ControlEventKind.Attach, ControlEventKind.Connect, ControlEventKind.Disconnect }));
        Assert.That(h.Control.First().Session.ImageId, Is.Null, "2005 control messages carry no image identifier");
        Assert.That(h.Kernel.ControlResponseProducer, Is.EqualTo(h.Kernel.ControlProduced), "rsp_prod follows req_cons (one-way ring)");
        Assert.That(h.Io(3, 1, 0, 0, new byte[4096]).Status, Is.EqualTo(-1), "a disconnected domain's requests fail");
    }

    [Test]
    public void ControlRing_MoreThan32MessagesBeforeTheTapReads_NewestKeptLossReported()
    {
        using var h = new Harness(beforeStart: k =>
        {
            k.Mode = 1; k.Mmap(FakeBlktapDevice.Length); // as if a previous SETMODE left the driver intercepting
            var bytes = new byte[64];
            for (ushort d = 1; d <= 40; d++)
            {
                BlktapControlMessage.BlkifBackend(BlkifBackendMessage.Create, d).Encode(bytes);
                k.Control(bytes);
            }
        });
        h.WaitControl(e => e.Session.DomainId == 40);
        Assert.That(h.Control.Select(e => (int)e.Session.DomainId), Is.EqualTo(Enumerable.Range(9, 32)));
        Assert.That(h.Diagnostics.Any(d => d.Message.Contains("8 control messages were overwritten")), Is.True);
    }

    [Test]
    public void GuestRequestWithTooManySegments_ClosesOnlyThatDomain()
    {
        using var h = new Harness();
        h.AttachAndConnect(5);
        h.AttachAndConnect(6);
        Assert.That(h.Kernel.GuestRequest(5, 1, 0, 0, new byte[4096], claimSegments: 12), Is.Not.Null);
        Assert.That(h.Kernel.WaitGuest(5, 1).Status, Is.EqualTo(-1));
        Assert.That(h.Control.Any(e => e.Kind == ControlEventKind.Disconnect && e.Session.DomainId == 5), Is.True);
        Assert.That(h.Control.Any(e => e.Kind == ControlEventKind.Disconnect && e.Session.DomainId == 6), Is.False);
        var data = Random(4096, 6);
        Assert.That(h.Io(6, 2, 1, 8, data).Status, Is.EqualTo(0), "the other domain keeps working");
        Assert.That(h.Kernel.Disk.AsSpan(8 * 512, 4096).ToArray(), Is.EqualTo(data));
        Assert.That(h.Tap.FaultReason, Is.Null);
        Assert.That(h.Kernel.ProtocolViolations, Is.Zero);
    }

    [TestCase(0x0005_0040UL, TestName = "KernelBug_IdNamesSlot64_DeviceFaultsAndAnswersNothing")]
    [TestCase(0x1_0005_0001UL, TestName = "KernelBug_IdWiderThan32Bits_DeviceFaultsAndAnswersNothing")]
    public void KernelBug_IdTheDriverCannotMake_DeviceFaultsAndAnswersNothing(ulong id)
    {
        using var h = new Harness();
        h.AttachAndConnect(5);
        h.Kernel.CorruptFeEntry(id);
        h.WaitControl(e => e.Kind == ControlEventKind.Disconnect && e.Session.DomainId == 5);
        Assert.That(h.Tap.FaultReason, Does.Contain("cannot have made"));
        Assert.That(h.Kernel.ProtocolViolations, Is.Zero, "nothing was answered for a slot the kernel does not have");
        Assert.That(h.Diagnostics.Where(d => d.Exception != null), Is.Empty);
    }

    [Test]
    public void KernelBug_FeProducerOverrun_DeviceFaultsEveryDomainDisconnected()
    {
        using var h = new Harness();
        h.AttachAndConnect(5);
        h.AttachAndConnect(6);
        h.Kernel.CorruptFeProducer(1000);
        h.WaitControl(e => e.Kind == ControlEventKind.Disconnect && e.Session.DomainId == 6);
        Assert.That(h.Tap.FaultReason, Does.Contain("fe ring"));
        Assert.That(h.Control.Count(e => e.Kind == ControlEventKind.Disconnect), Is.EqualTo(2));
    }

    [Test]
    public void FeRingFull_33rdRequestWhileTheTapHolds32_TheDriverDropsIt()
    {
        // A documented 2005 quirk: 64 active slots but a 32-entry fe ring on x86_64, and blktap_write_fe_ring drops
        // a request when the ring is full. A hook that steals 32 requests makes the driver drop the 33rd.
        var stolen = new ConcurrentQueue<TapRequest>();
        using var h = new Harness(rt => rt.RegisterRequestHook("hold", Hook.Request(r => { stolen.Enqueue(r); return HookResult.Stolen; })));
        h.AttachAndConnect(5);
        for (int i = 0; i < 32; i++) Assert.That(h.Kernel.GuestRequest(5, (ulong)i, 0, 0, new byte[4096]), Is.Not.Null);
        var deadline = Environment.TickCount64 + (long)Waits.Deadline.TotalMilliseconds;
        while (stolen.Count < 32 && Environment.TickCount64 < deadline) Thread.Yield();
        Assert.That(stolen.Count, Is.EqualTo(32));
        Assert.That(h.Kernel.GuestRequest(5, 99, 0, 0, new byte[4096]), Is.Null);
        Assert.That(h.Kernel.Dropped, Is.EqualTo(1));
        foreach (var r in stolen) h.Runtime.InjectResponse(r, BlkifStatus.Okay);
        for (int i = 0; i < 32; i++) Assert.That(h.Kernel.WaitGuest(5, (ulong)i).Status, Is.EqualTo(0));
    }

    [Test]
    public void Disconnect_WithAStolenRequest_SlotStillGoesBackToTheDriver()
    {
        var stolen = new ConcurrentQueue<TapRequest>();
        using var h = new Harness(rt => rt.RegisterRequestHook("hold", Hook.Request(r => { stolen.Enqueue(r); return HookResult.Stolen; })));
        h.AttachAndConnect(5);
        Assert.That(h.Kernel.GuestRequest(5, 1, 0, 0, new byte[4096]), Is.Not.Null);
        var deadline = Environment.TickCount64 + (long)Waits.Deadline.TotalMilliseconds;
        while (stolen.IsEmpty && Environment.TickCount64 < deadline) Thread.Yield();
        h.Send(BlktapControlMessage.BlkifBackend(BlkifBackendMessage.Disconnect, 5));
        h.WaitControl(e => e.Kind == ControlEventKind.Disconnect);
        h.Runtime.InjectResponse(stolen.Single(), BlkifStatus.Okay);
        h.Kernel.WaitGuest(5, 1); // the kernel reads a response for the slot, so it frees it and unmaps its pages
        Assert.That(h.Kernel.ProtocolViolations, Is.Zero);
    }

    [Test]
    public void UnknownDomain_Request_AnsweredErrorAndSlotFreed()
    {
        using var h = new Harness();
        Assert.That(h.Io(9, 1, 0, 0, new byte[4096]).Status, Is.EqualTo(-1));
        h.AttachAndConnect(9);
        Assert.That(h.Io(9, 2, 0, 0, new byte[4096]).Status, Is.EqualTo(0));
    }
}
