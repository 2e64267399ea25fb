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

    private static async Task<VerifyingObserver> Replay(List<ReplayRequest> requests, bool deterministic, int seed, Action<TapRuntime>? extra = null)
    {
        var observer = new VerifyingObserver();
        await using var rig = await EmulatorRig.StartAsync(new EmulatorRigOptions { Frontends = 3, Deterministic = deterministic, Seed = seed }, rt =>
        {
            extra?.Invoke(rt);
            var mem = new BlockDeviceHook(new MemoryBlockDevice(1 << 20));
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
