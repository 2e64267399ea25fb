using System.Collections.Concurrent;
using BlkTap.Xen;
using BlkTap.Tests.Emulator;
using NUnit.Framework;

namespace BlkTap.Tests.XenBackend;

/// <summary>
/// The 2005 /dev/blktap device with a simulated kernel side: requests from the fe ring through the hooks to the
/// be ring and back, terminating hooks, hostile kernel input.
/// </summary>
[TestFixture]
public sealed class BlktapDevice2005Tests
{
    private const int Slots = 16;
    private const int DiskSectors = 2048;

    private sealed class Harness : IDisposable
    {
        private readonly CancellationTokenSource _cts = new();
        private readonly Task _loop;

        public Harness(Action<TapRuntime>? configure = null)
        {
            Device = new FakeBlktapDevice(Slots);
            Kernel = new SimulatedBlktapKernel(Device, DiskSectors);
            Runtime = new TapRuntime(new TapRuntimeOptions { Diagnostics = Diagnostics.Enqueue });
            Runtime.RegisterControlHook("size", Hook.Control(e =>
            {
                Control.Enqueue(e);
                if (e.Kind == ControlEventKind.Attach) e.Session.Sectors = DiskSectors;
            }));
            configure?.Invoke(Runtime);
            Tap = new BlktapDevice2005(Runtime, Device, new BlktapDevice2005Options { Slots = Slots });
            Tap.Start();
            _loop = Runtime.RunAsync(_cts.Token);
        }

        public FakeBlktapDevice Device { get; }
        public SimulatedBlktapKernel Kernel { get; }
        public TapRuntime Runtime { get; }
        public BlktapDevice2005 Tap { get; }
        public ConcurrentQueue<TapDiagnostic> Diagnostics { get; } = new();
        public ConcurrentQueue<ControlEvent> Control { get; } = new();

        public void AttachAndConnect(ushort domid)
        {
            var attach = Kernel.Control(new BlktapControlMessage(BlktapControlType.Attach, domid, ImageId: $"disk{domid}"));
            Assert.That(attach.Status, Is.EqualTo(BlktapControlMessage.StatusOkay));
            Assert.That(attach.Sectors, Is.EqualTo((ulong)DiskSectors), "the attach answer carries the size the hooks set");
            Assert.That(Kernel.Control(new BlktapControlMessage(BlktapControlType.Connect, domid)).Status, Is.EqualTo(BlktapControlMessage.StatusOkay));
        }

        public void Dispose()
        {
            _cts.Cancel();
            _loop.Wait(Waits.Deadline);
            Tap.Dispose();
            Runtime.Dispose();
        }
    }

    [Test]
    public void Start_MapsAndSetsInterposeMode()
    {
        using var h = new Harness();
        Assert.That(h.Device.MapCalls, Is.EqualTo(1));
        Assert.That(h.Device.Ioctls.First(), Is.EqualTo((BlktapDeviceAbi.IoctlSetMode, (nuint)BlktapDeviceAbi.ModeInterpose)));
        Assert.That(h.Runtime.Backend, Is.SameAs(h.Tap));
    }

    [Test]
    public void PassedRequest_ThroughHooksAndBackend_ResponseKeepsOriginalId()
    {
        var requestIds = new ConcurrentQueue<ulong>();
        var responseIds = new ConcurrentQueue<ulong>();
        using var h = new Harness(rt =>
        {
            rt.RegisterRequestHook("see", Hook.Request(r => { requestIds.Enqueue(r.Id); return HookResult.Pass; }));
            rt.RegisterResponseHook("see", Hook.Response(r => responseIds.Enqueue(r.Id)));
        });
        h.AttachAndConnect(5);
        var data = new byte[8192];
        new Random(5).NextBytes(data);
        ulong writeId = h.Kernel.Submit(5, 3, BlkifOperation.Write, 100, data);
        var written = h.Kernel.WaitResponse(writeId);
        Assert.That(written, Is.EqualTo(new BlkifResponse((5UL << 16) | 3, BlkifOperation.Write, BlkifStatus.Okay)));
        Assert.That(h.Kernel.Disk.AsSpan(100 * 512, 8192).ToArray(), Is.EqualTo(data), "the backend wrote the data-area pages of slot 3");

        ulong readId = h.Kernel.Submit(5, 9, BlkifOperation.Read, 100, new byte[8192]);
        Assert.That(h.Kernel.WaitResponse(readId).Status, Is.EqualTo(BlkifStatus.Okay));
        var read = new byte[8192];
        h.Kernel.DataPage(9, 0).CopyTo(read);
        h.Kernel.DataPage(9, 1).CopyTo(read.AsSpan(4096));
        Assert.That(read, Is.EqualTo(data));

        Assert.That(requestIds, Is.EqualTo(new[] { writeId, readId }));
        Assert.That(h.Kernel.BackendSaw, Is.EqualTo(new[] { writeId, readId }), "the be ring carried the original ids");
        Assert.That(responseIds, Is.EqualTo(new[] { writeId, readId }));
        Assert.That(h.Device.Ioctls.Any(i => i.Command == BlktapDeviceAbi.IoctlKickBe), Is.True);
        Assert.That(h.Device.Ioctls.Any(i => i.Command == BlktapDeviceAbi.IoctlKickFe), Is.True);
    }

    [FsCheck.NUnit.Property(MaxTest = 25)]
    public bool Writes_ThroughInterposingHookThatFlipsBits_ReadBackAsWritten(byte[] seeds)
    {
        // An interposer that inverts data on the way to the backend and back (a toy cipher): the backend's disk
        // holds the inverse, the frontend reads back what it wrote.
        using var h = new Harness(rt =>
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
        });
        h.AttachAndConnect(2);
        var model = new byte[DiskSectors * 512];
        Array.Fill(model, (byte)0xFF); // the backend's zeroes, seen through the inverting tap
        var rnd = new Random(seeds.Length == 0 ? 1 : seeds[0] * 257 + seeds.Length);
        int ops = Math.Min(seeds.Length + 3, 20);
        for (int i = 0; i < ops; i++)
        {
            int pages = rnd.Next(1, BlktapDeviceAbi.MaxSegmentsPerRequest + 1);
            ulong sector = (ulong)rnd.Next(0, DiskSectors - pages * 8);
            int slot = rnd.Next(Slots);
            var data = new byte[pages * 4096];
            rnd.NextBytes(data);
            var ws = h.Kernel.WaitResponse(h.Kernel.Submit(2, slot, BlkifOperation.Write, sector, data)).Status;
            Assert.That(ws, Is.EqualTo(BlkifStatus.Okay), $"write {i}: {pages} pages at {sector}; " + string.Join("; ", h.Diagnostics));
            data.CopyTo(model, (int)sector * 512);
            ulong readAt = (ulong)rnd.Next(0, DiskSectors - 8);
            if (h.Kernel.WaitResponse(h.Kernel.Submit(2, slot, BlkifOperation.Read, readAt, new byte[4096])).Status != BlkifStatus.Okay) return false;
            Assert.That(h.Kernel.DataPage(slot, 0).ToArray(), Is.EqualTo(model.AsSpan((int)readAt * 512, 4096).ToArray()), $"read {i}");
            var onDisk = h.Kernel.Disk.AsSpan((int)sector * 512, data.Length).ToArray();
            Invert(onDisk);
            Assert.That(onDisk, Is.EqualTo(data), $"disk {i}");
        }
        Assert.That(h.Diagnostics, Is.Empty);
        return true;
    }

    private static void Invert(Span<byte> bytes)
    {
        for (int i = 0; i < bytes.Length; i++) bytes[i] = (byte)~bytes[i];
    }

    [Test]
    public void RespondHook_Terminates_AnsweredOnFeRingWithoutTheBackend()
    {
        using var h = new Harness(rt => rt.RegisterRequestHook("terminate", Hook.Request(r =>
        {
            if (r.Operation == BlkifOperation.Read) for (int s = 0; s < r.SegmentCount; s++) r.SegmentData(s).Fill(0xAB);
            r.Status = BlkifStatus.Okay;
            return HookResult.Respond;
        })));
        h.AttachAndConnect(7);
        ulong id = h.Kernel.Submit(7, 0, BlkifOperation.Read, 0, new byte[4096]);
        Assert.That(h.Kernel.WaitResponse(id), Is.EqualTo(new BlkifResponse(id, BlkifOperation.Read, BlkifStatus.Okay)));
        Assert.That(h.Kernel.DataPage(0, 0).ToArray(), Is.All.EqualTo(0xAB));
        Assert.That(h.Kernel.BackendSaw, Is.Empty);
        Assert.That(h.Device.Ioctls.Any(i => i.Command == BlktapDeviceAbi.IoctlKickBe), Is.False);
    }

    [TestCase(Slots, TestName = "HostileSlotIndex_JustBeyondDataArea_ClosesOnlyThatDomain")]
    [TestCase(0xFFFF, TestName = "HostileSlotIndex_Maximum_ClosesOnlyThatDomain")]
    public void HostileSlotIndex_ClosesOnlyThatDomain(int badSlot)
    {
        using var h = new Harness();
        h.AttachAndConnect(5);
        h.AttachAndConnect(6);
        // A request whose id names a slot the data area does not have.
        ulong bad = (5UL << 16) | (uint)badSlot;
        var request = new BlkifRequest { Operation = BlkifOperation.Write, SegmentCount = 1, Id = bad, Sector = 0 };
        request.Segments[0] = new BlkifSegment(0, 0, 7);
        h.Kernel.SubmitRaw(in request);
        Assert.That(h.Kernel.WaitResponse(bad).Status, Is.EqualTo(BlkifStatus.Error));

        Assert.That(h.Control.Any(e => e.Kind == ControlEventKind.Disconnect && e.Session.DomainId == 5 && e.Reason!.Contains("beyond the data area")), Is.True);
        Assert.That(h.Control.Any(e => e.Kind == ControlEventKind.Disconnect && e.Session.DomainId == 6), Is.False);
        ulong stillFive = h.Kernel.Submit(5, 1, BlkifOperation.Read, 0, new byte[4096]);
        Assert.That(h.Kernel.WaitResponse(stillFive).Status, Is.EqualTo(BlkifStatus.Error), "the closed domain's later requests are refused");
        var data = new byte[4096];
        data.AsSpan().Fill(0x66);
        ulong six = h.Kernel.Submit(6, 2, BlkifOperation.Write, 8, data);
        Assert.That(h.Kernel.WaitResponse(six).Status, Is.EqualTo(BlkifStatus.Okay), "the other domain keeps working");
        Assert.That(h.Kernel.Disk.AsSpan(8 * 512, 4096).ToArray(), Is.All.EqualTo(0x66));
        Assert.That(h.Tap.FaultReason, Is.Null);
    }

    [Test]
    public void FeRingProducerOverrun_DeviceFaults_EveryDomainDisconnectedNoException()
    {
        using var h = new Harness();
        h.AttachAndConnect(5);
        h.Kernel.CorruptRequestProducer(1000);
        var deadline = DateTime.UtcNow + Waits.Deadline;
        while (h.Tap.FaultReason == null && DateTime.UtcNow < deadline) Thread.Sleep(2);
        Assert.That(h.Tap.FaultReason, Does.Contain("fe ring"));
        Assert.That(h.Diagnostics.Where(d => d.Exception != null), Is.Empty);
        Assert.That(h.Control.Any(e => e.Kind == ControlEventKind.Disconnect && e.Session.DomainId == 5), Is.True);
    }

    [Test]
    public void ControlMessages_UnknownTypeAndUnattachedDomain_RefusedWithStatus()
    {
        using var h = new Harness();
        Assert.That(h.Kernel.Control(new BlktapControlMessage((BlktapControlType)9, 3)).Status, Is.EqualTo(BlktapControlMessage.StatusUnknownType));
        Assert.That(h.Kernel.Control(new BlktapControlMessage(BlktapControlType.Connect, 3)).Status, Is.EqualTo(BlktapControlMessage.StatusRefused));
        h.AttachAndConnect(3);
        Assert.That(h.Kernel.Control(new BlktapControlMessage(BlktapControlType.Attach, 3)).Status, Is.EqualTo(BlktapControlMessage.StatusRefused), "attached twice");
        Assert.That(h.Kernel.Control(new BlktapControlMessage(BlktapControlType.Disconnect, 3)).Status, Is.EqualTo(BlktapControlMessage.StatusOkay));
        Assert.That(h.Control.Select(e => e.Kind), Is.EqualTo(new[] { ControlEventKind.Attach, ControlEventKind.Connect, ControlEventKind.Disconnect }));
        Assert.That(h.Control.First().Session.ImageId, Is.EqualTo("disk3"));
    }
}
