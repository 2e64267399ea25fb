using BlkTap.Emulator;
using FsCheck;
using FsCheck.Fluent;
using NUnit.Framework;
using BlkTap.Testing;

namespace BlkTap.Emulator.Tests;

public class BlkFrontTests
{
    private static IEnumerable<TestCaseData> AbisAndOrders()
    {
        foreach (var protocol in new[] { BlkifProtocol.X86_64, BlkifProtocol.X86_32 })
            for (int order = 0; order <= 3; order++)
                yield return new TestCaseData(protocol, order);
    }

    [TestCaseSource(nameof(AbisAndOrders))]
    public void Connect_AnyAbiAndRingOrder_BothEndsConnectedAndNodesWritten(BlkifProtocol protocol, int order)
    {
        using var emu = XenEmulator.CreateDeterministic(order * 10 + (int)protocol);
        var h = EmulatorHarness.Connect(emu, options: new BlkFrontOptions { Protocol = protocol, MaxRingPageOrder = order });
        var store = emu.Store;
        string fe = h.Front.FrontendPath;

        Assert.That(XenbusDevices.ReadState(store, fe), Is.EqualTo(XenbusState.Connected));
        Assert.That(XenbusDevices.ReadState(store, h.Front.BackendPath), Is.EqualTo(XenbusState.Connected));
        Assert.That(store.Read(fe + "/protocol"), Is.EqualTo(protocol.ToName()));
        Assert.That(h.Backend.ProtocolSeen, Is.EqualTo(protocol.ToName()));
        Assert.That(h.Front.RingPageOrder, Is.EqualTo(order));
        Assert.That(h.Backend.RingPages, Is.EqualTo(1 << order));
        if (order == 0)
        {
            Assert.That(store.Read(fe + "/ring-ref"), Is.Not.Null);
            Assert.That(store.Read(fe + "/ring-page-order"), Is.Null);
        }
        else
        {
            Assert.That(store.Read(fe + "/ring-ref"), Is.Null);
            Assert.That(store.Read(fe + "/ring-page-order"), Is.EqualTo(order.ToString()));
            for (int i = 0; i < 1 << order; i++) Assert.That(store.Read($"{fe}/ring-ref{i}"), Is.Not.Null);
        }
        Assert.That(h.Front.Ring!.Size, Is.EqualTo(32u << order));
        Assert.That(h.Front.Sectors, Is.EqualTo(2048UL));
        Assert.That(h.Front.SupportsFlush && h.Front.SupportsDiscard, Is.True);

        var data = new byte[4096 * 3];
        new Random(order).NextBytes(data);
        Assert.That(EmulatorHarness.Wait(emu, h.Front.WriteAsync(7, data)), Is.EqualTo(BlkifStatus.Okay));
        var back = new byte[data.Length];
        Assert.That(EmulatorHarness.Wait(emu, h.Front.ReadAsync(7, back)), Is.EqualTo(BlkifStatus.Okay));
        Assert.That(back, Is.EqualTo(data));
        Assert.That(h.Disk.AsSpan(7 * 512, data.Length).SequenceEqual(data), Is.True);
    }

    [Test]
    public void Connect_BackendOffersNoRingOrder_UsesOnePageRingRef()
    {
        using var emu = XenEmulator.CreateDeterministic(2);
        var h = EmulatorHarness.Connect(emu, configure: b => b.MaxRingPageOrder = null);
        Assert.That(h.Front.RingPageOrder, Is.EqualTo(0));
        Assert.That(emu.Store.Read(h.Front.FrontendPath + "/ring-ref"), Is.Not.Null);
    }

    [Test]
    public void Connect_ThreadedScheduler_WorkloadRoundTrips()
    {
        using var emu = new XenEmulator();
        var h = EmulatorHarness.Connect(emu, options: new BlkFrontOptions { RandomFirstSector = true, Seed = 3 });
        var data = new byte[64 * 1024];
        new Random(1).NextBytes(data);
        var writes = Enumerable.Range(0, 8).Select(i => h.Front.WriteAsync((ulong)(i * 128), data.AsMemory(i * 8192, 8192))).ToArray();
        Assert.That(Task.WaitAll(writes, Waits.Deadline), Is.True);
        var back = new byte[data.Length];
        var reads = Enumerable.Range(0, 8).Select(i => h.Front.ReadAsync((ulong)(i * 128), back.AsMemory(i * 8192, 8192))).ToArray();
        Assert.That(Task.WaitAll(reads, Waits.Deadline), Is.True);
        Assert.That(writes.Concat(reads).Select(t => t.Result), Is.All.EqualTo(BlkifStatus.Okay));
        Assert.That(back, Is.EqualTo(data));
        Assert.That(emu.Faults, Is.Empty);
    }

    public sealed record Op(bool Write, int Sector, int Sectors, byte Fill, int FirstSector);

    private static Arbitrary<Op[]> Ops() =>
        (from write in Gen.Elements(true, false)
         from sector in Gen.Choose(0, 1900)
         from sectors in Gen.Choose(1, 140)
         from fill in Gen.Choose(0, 255)
         from first in Gen.Choose(0, 7)
         select new Op(write, sector, Math.Min(sectors, 2048 - sector), (byte)fill, first))
        .ArrayOf().ToArbitrary();

    /// <summary>Random concurrent reads and writes through the frontend, ring and grants equal a byte-array model.</summary>
    [FsCheck.NUnit.Property(MaxTest = 25)]
    public Property ReadWrite_RandomWorkload_MatchesByteArrayModel() => Prop.ForAll(Ops(), Gen.Choose(0, 1000).ToArbitrary(), (ops, seed) =>
    {
        using var emu = XenEmulator.CreateDeterministic(seed);
        var h = EmulatorHarness.Connect(emu, options: new BlkFrontOptions { RandomFirstSector = true, Seed = seed, MaxRingPageOrder = seed % 4 });
        var model = new byte[h.Disk.Length];
        // Issue in batches of independent (non-overlapping) operations, so completion order does not matter.
        var batch = new List<(Op Op, Task<BlkifStatus> Task, byte[] Buffer)>();
        var busy = new List<(int Start, int End)>();
        void Drain()
        {
            foreach (var (op, task, buffer) in batch)
            {
                Assert.That(EmulatorHarness.Wait(emu, task), Is.EqualTo(BlkifStatus.Okay));
                if (!op.Write)
                    Assert.That(buffer.AsSpan().SequenceEqual(model.AsSpan(op.Sector * 512, buffer.Length)), Is.True, $"read of {op}");
            }
            batch.Clear();
            busy.Clear();
        }
        foreach (var op in ops)
        {
            if (busy.Any(b => op.Sector < b.End && b.Start < op.Sector + op.Sectors)) Drain();
            busy.Add((op.Sector, op.Sector + op.Sectors));
            var buffer = new byte[op.Sectors * 512];
            if (op.Write)
            {
                for (int i = 0; i < buffer.Length; i++) buffer[i] = (byte)(op.Fill + i / 512);
                buffer.CopyTo(model, op.Sector * 512);
                batch.Add((op, h.Front.WriteAsync((ulong)op.Sector, buffer), buffer));
            }
            else batch.Add((op, h.Front.ReadAsync((ulong)op.Sector, buffer), buffer));
        }
        Drain();
        Assert.That(h.Disk, Is.EqualTo(model));
        Assert.That(h.Front.Outstanding, Is.EqualTo(0));
        Assert.That(h.Guest.Grants.ActiveCount, Is.EqualTo(1 << h.Front.RingPageOrder), "only the ring stays granted");
        Assert.That(emu.MappingCount, Is.EqualTo(1), "only the ring stays mapped");
    });

    [Test]
    public void Write_FirstSectorOffset_SendsSubPageSegmentsThatLandCorrectly()
    {
        using var emu = XenEmulator.CreateDeterministic(4);
        var h = EmulatorHarness.Connect(emu, options: new BlkFrontOptions { FirstSectorOffset = 5 });
        var data = new byte[100 * 512];
        new Random(2).NextBytes(data);
        Assert.That(EmulatorHarness.Wait(emu, h.Front.WriteAsync(3, data)), Is.EqualTo(BlkifStatus.Okay));
        Assert.That(h.Disk.AsSpan(3 * 512, data.Length).SequenceEqual(data), Is.True);
        Assert.That(h.Backend.SeenSegments.Any(s => s.FirstSector == 5 && s.LastSector == 7), Is.True);
        Assert.That(h.Backend.SeenSegments.Sum(s => s.SectorCount), Is.EqualTo(100));
        // 100 sectors: 3 in the first page, then 10 full pages per request: 2 requests.
        Assert.That(h.Front.RequestsSubmitted, Is.EqualTo(2));
    }

    [Test]
    public void Read_MoreRequestsThanRingSlots_QueuesAndCompletesAll()
    {
        using var emu = XenEmulator.CreateDeterministic(5);
        var h = EmulatorHarness.Connect(emu, options: new BlkFrontOptions { MaxRingPageOrder = 0 }, configure: b => b.HoldResponses = true);
        for (int i = 0; i < 2048; i++) h.Disk[i * 512] = (byte)i;
        var buffers = Enumerable.Range(0, 40).Select(_ => new byte[512]).ToArray();
        var tasks = buffers.Select((b, i) => h.Front.ReadAsync((ulong)i, b)).ToArray();
        emu.RunUntilIdle();

        Assert.That(h.Front.Outstanding, Is.EqualTo(32));
        Assert.That(h.Front.Queued, Is.EqualTo(8));
        Assert.That(h.Backend.Held, Has.Count.EqualTo(32));
        Assert.That(tasks.Any(t => t.IsCompleted), Is.False);

        h.Backend.ReleaseHeld();
        emu.RunUntil(() => tasks.All(t => t.IsCompleted) || h.Backend.Held.Count == 8);
        h.Backend.ReleaseHeld();
        emu.RunUntilIdle();

        Assert.That(tasks.Select(t => t.Result), Is.All.EqualTo(BlkifStatus.Okay));
        Assert.That(buffers.Select(b => (int)b[0]), Is.EqualTo(Enumerable.Range(0, 40)));
        Assert.That(h.Front.Outstanding + h.Front.Queued, Is.EqualTo(0));
    }

    [Test]
    public void FlushAndDiscard_Supported_ReachTheBackend()
    {
        using var emu = XenEmulator.CreateDeterministic(6);
        var h = EmulatorHarness.Connect(emu);
        h.Disk.AsSpan().Fill(0xEE);
        Assert.That(EmulatorHarness.Wait(emu, h.Front.FlushAsync()), Is.EqualTo(BlkifStatus.Okay));
        Assert.That(EmulatorHarness.Wait(emu, h.Front.DiscardAsync(10, 20)), Is.EqualTo(BlkifStatus.Okay));
        Assert.That(h.Backend.SeenOperations, Is.EqualTo(new[] { BlkifOperation.FlushDiskCache, BlkifOperation.Discard }));
        Assert.That(h.Disk.AsSpan(10 * 512, 20 * 512).IndexOfAnyExcept((byte)0), Is.EqualTo(-1));
        Assert.That(h.Disk[30 * 512], Is.EqualTo(0xEE));
    }

    [Test]
    public void Read_PastTheEnd_BackendErrorIsAStatusNotAnException()
    {
        using var emu = XenEmulator.CreateDeterministic(7);
        var h = EmulatorHarness.Connect(emu);
        Assert.That(EmulatorHarness.Wait(emu, h.Front.ReadAsync(2047, new byte[1024])), Is.EqualTo(BlkifStatus.Error));
        Assert.That(h.Front.IsBroken, Is.False);
    }

    [Test]
    public void SubmitRaw_UnknownOperation_ReturnsTheBackendsResponse()
    {
        using var emu = XenEmulator.CreateDeterministic(8);
        var h = EmulatorHarness.Connect(emu);
        var raw = new byte[h.Front.Layout.RequestSize];
        raw[0] = 4; // BLKIF_OP_RESERVED_1
        var response = EmulatorHarness.Wait(emu, h.Front.SubmitRaw(raw));
        Assert.That(response.Status, Is.EqualTo(BlkifStatus.NotSupported));
        Assert.That((byte)response.Operation, Is.EqualTo(4));
        Assert.That(h.Front.IsBroken, Is.False);
    }

    [Test]
    public void Response_UnknownId_BreaksOnlyThatFrontend()
    {
        using var emu = XenEmulator.CreateDeterministic(9);
        var hostile = EmulatorHarness.Connect(emu, devid: 51712, configure: b => b.ForgeNextResponseId = 0xdead);
        var healthy = EmulatorHarness.Connect(emu, devid: 51728);

        var broken = hostile.Front.ReadAsync(0, new byte[4096]);
        var fine = healthy.Front.ReadAsync(0, new byte[4096]);
        emu.RunUntil(() => broken.IsCompleted && fine.IsCompleted);

        var e = Assert.Throws<BlkFrontException>(() => broken.GetAwaiter().GetResult());
        Assert.That(e!.Message, Does.Contain("57005")); // 0xdead
        Assert.That(hostile.Front.IsBroken, Is.True);
        Assert.That(XenbusDevices.ReadState(emu.Store, hostile.Front.FrontendPath), Is.EqualTo(XenbusState.Closing));
        Assert.That(emu.Store.Read(hostile.Front.FrontendPath + "/error"), Does.Contain("not outstanding"));
        Assert.ThrowsAsync<BlkFrontException>(() => hostile.Front.WriteAsync(0, new byte[512]));

        Assert.That(fine.Result, Is.EqualTo(BlkifStatus.Okay));
        Assert.That(healthy.Front.IsBroken, Is.False);
        Assert.That(EmulatorHarness.Wait(emu, healthy.Front.WriteAsync(0, new byte[512])), Is.EqualTo(BlkifStatus.Okay));
        Assert.That(emu.Faults, Is.Empty);
    }

    [Test]
    public void Response_ProducerOverrun_BreaksTheFrontendAndFailsPendingCalls()
    {
        using var emu = XenEmulator.CreateDeterministic(10);
        var h = EmulatorHarness.Connect(emu, configure: b => b.OverrunNextPush = true);
        var tasks = Enumerable.Range(0, 4).Select(i => h.Front.ReadAsync((ulong)i, new byte[512])).ToArray();
        emu.RunUntil(() => tasks.All(t => t.IsCompleted));
        Assert.That(h.Front.IsBroken, Is.True);
        Assert.That(h.Front.BrokenReason, Does.Contain("overrun"));
        Assert.That(tasks.Any(t => t.IsFaulted), Is.True);
        Assert.That(emu.Faults, Is.Empty);
    }

    [Test]
    public void Disconnect_Connected_BothEndsClosedAndRingGivenBack()
    {
        using var emu = XenEmulator.CreateDeterministic(11);
        var h = EmulatorHarness.Connect(emu);
        long pagesBefore = h.Guest.PageCount;
        Assert.That(pagesBefore, Is.GreaterThan(0));

        EmulatorHarness.Wait(emu, h.Front.DisconnectAsync());

        Assert.That(h.Front.State, Is.EqualTo(XenbusState.Closed));
        Assert.That(XenbusDevices.ReadState(emu.Store, h.Front.FrontendPath), Is.EqualTo(XenbusState.Closed));
        Assert.That(XenbusDevices.ReadState(emu.Store, h.Front.BackendPath), Is.EqualTo(XenbusState.Closed));
        Assert.That(h.Guest.Grants.ActiveCount, Is.EqualTo(0));
        Assert.That(h.Guest.PageCount, Is.EqualTo(0));
        Assert.That(emu.MappingCount, Is.EqualTo(0));
        Assert.ThrowsAsync<BlkFrontException>(() => h.Front.ReadAsync(0, new byte[512]));
    }

    [Test]
    public void Read_BeforeConnect_FailsWithClearError()
    {
        using var emu = XenEmulator.CreateDeterministic(12);
        var guest = emu.CreateDomain("guest");
        XenbusDevices.CreateVbd(emu.Store, guest.Id, 0, 51712, "x");
        var front = new BlkFront(emu, guest, 51712);
        var e = Assert.ThrowsAsync<BlkFrontException>(() => front.ReadAsync(0, new byte[512]));
        Assert.That(e!.Message, Does.Contain("not connected"));
        Assert.Throws<ArgumentException>(() => front.ReadAsync(0, new byte[100]));
    }

    [Test]
    public void Constructor_NoVbdNodes_ThrowsNamingThePath()
    {
        using var emu = XenEmulator.CreateDeterministic(13);
        var guest = emu.CreateDomain("guest");
        var e = Assert.Throws<InvalidOperationException>(() => new BlkFront(emu, guest, 51712));
        Assert.That(e!.Message, Does.Contain($"/local/domain/{guest.Id}/device/vbd/51712/backend"));
    }
}
