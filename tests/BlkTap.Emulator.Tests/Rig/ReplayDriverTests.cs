using BlkTap.Emulator;
using BlkTap.Trace;
using FsCheck;
using NUnit.Framework;

namespace BlkTap.Emulator.Tests.Rig;

public class ReplayDriverTests
{
    private sealed class VerifyingObserver : IReplayObserver
    {
        public readonly ReplayVerifier Model = new();
        public readonly List<ReplayMismatch> Mismatches = new();
        public int Reads;

        public void FillWrite(in ReplayRequest request, ulong writeSequence, Span<byte> data) => ReplayData.Fill(data, request.Sector, writeSequence);

        public void OnCompleted(in ReplayCompletion c, ReadOnlySpan<byte> readData)
        {
            Assert.That(c.Status, Is.EqualTo(BlkifStatus.Okay), c.ToString());
            if (c.WriteSequence != 0) Model.RecordWrite(c.Request.Sector, c.Request.SectorCount, c.WriteSequence);
            else if (c.Request.Operation == BlkifOperation.Read)
            {
                Reads++;
                if (Model.Verify(c.Request.Sector, readData) is { } m) Mismatches.Add(m);
            }
        }
    }

    private static List<ReplayRequest> Workload(int seed, int frontends, int count)
    {
        var rng = new Random(seed);
        var list = new List<ReplayRequest>();
        for (int i = 0; i < count; i++)
        {
            // A small hot region so requests of all frontends overlap often.
            var op = rng.Next(3) == 0 ? BlkifOperation.Read : rng.Next(4) == 0 ? BlkifOperation.Read : BlkifOperation.Write;
            list.Add(new ReplayRequest(rng.Next(frontends), op, (ulong)rng.Next(256), (uint)(rng.Next(1, 24) * 512), 0));
        }
        return list;
    }

    // Mostly spread over a large sparse disk (the admission filter's fast path), some in a hot region across the filter's
    // 64 KiB granule boundaries, some 256 MiB away from it (the same buckets of the filter's table, no overlap) and a few
    // wide ones (the filter counts those apart).
    private static List<ReplayRequest> SpreadWorkload(int seed, int frontends, int count)
    {
        var rng = new Random(seed);
        var list = new List<ReplayRequest>();
        for (int i = 0; i < count; i++)
        {
            var op = rng.Next(3) == 0 ? BlkifOperation.Read : BlkifOperation.Write;
            int kind = rng.Next(20);
            ulong sector = kind switch
            {
                < 8 => (ulong)rng.Next((1 << 21) - 64),
                < 16 => (ulong)(128 * rng.Next(1, 8) + rng.Next(-16, 16)), // about the filter's granule boundaries
                < 19 => (256UL << 11) + (ulong)rng.Next(1024),
                _ => (ulong)rng.Next(1 << 20),
            };
            uint bytes = kind == 19 ? (uint)rng.Next(1, 3) << 23 : (uint)(rng.Next(1, 24) * 512);
            list.Add(new ReplayRequest(rng.Next(frontends), op, sector, bytes, 0));
        }
        return list;
    }

    private static async Task<VerifyingObserver> Replay(List<ReplayRequest> requests, bool deterministic, int seed, Action<TapRuntime>? extra = null,
        long diskBytes = 1 << 20)
    {
        var observer = new VerifyingObserver();
        await using var rig = await EmulatorRig.StartAsync(new EmulatorRigOptions { Frontends = 3, Deterministic = deterministic, Seed = seed }, rt =>
        {
            extra?.Invoke(rt);
            var mem = new BlockDeviceHook(new MemoryBlockDevice(diskBytes));
            rt.RegisterControlHook("mem", mem);
            rt.RegisterRequestHook("mem", mem);
        });
        var driver = new ReplayDriver(rig, new ReplayDriverOptions { QueueDepth = 16, SharedDisk = true }, observer);
        await driver.RunAsync(requests);
        Assert.That(driver.Completed, Is.EqualTo(requests.Count));
        return observer;
    }

    [FsCheck.NUnit.Property(MaxTest = 8)]
    public void RunAsync_OverlappingRequestsFromManyFrontends_EveryReadExact(PositiveInt seed)
    {
        var requests = Workload(seed.Get, 3, 300);
        var observer = Replay(requests, deterministic: seed.Get % 2 == 0, seed.Get).GetAwaiter().GetResult();
        Assert.That(observer.Reads, Is.GreaterThan(50));
        Assert.That(observer.Mismatches, Is.Empty);
    }

    [FsCheck.NUnit.Property(MaxTest = 8)]
    public void RunAsync_SpreadAndAliasedRequests_EveryReadExact(PositiveInt seed)
    {
        // Random delays in front of the disk complete requests out of order: only the admission test keeps an
        // overlapping request from overtaking one in flight.
        var requests = SpreadWorkload(seed.Get, 3, 500);
        // (Threaded scheduling: a deterministic run would see the delay tap's timer thread as idleness.)
        var observer = Replay(requests, deterministic: false, seed.Get,
            rt => rt.RegisterRequestHook("delay", new BlkTap.Examples.DelayTap(TimeSpan.Zero, TimeSpan.FromMilliseconds(2), seed.Get)),
            diskBytes: 1L << 30).GetAwaiter().GetResult();
        Assert.That(observer.Reads, Is.GreaterThan(60));
        Assert.That(observer.Mismatches, Is.Empty);
    }

    [Test]
    public async Task RunAsync_TapCorruptsReads_VerifierSeesMismatch()
    {
        var requests = Workload(4, 3, 200);
        var observer = await Replay(requests, deterministic: true, 4, rt => rt.RegisterResponseHook("flip", Hook.Response(r =>
        {
            if (r.Operation == BlkifOperation.Read && r.Sector % 7 == 3 && r.HasData) r.SegmentData(0)[100] ^= 1;
        })));
        Assert.That(observer.Mismatches, Is.Not.Empty);
    }
}
