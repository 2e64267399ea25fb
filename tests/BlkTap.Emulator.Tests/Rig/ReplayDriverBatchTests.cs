using System.IO.Hashing;
using BlkTap.Emulator;
using BlkTap.Testing;
using BlkTap.Trace;
using FsCheck;
using NUnit.Framework;

namespace BlkTap.Emulator.Tests.Rig;

/// <summary>
/// The replay driver's batch path (<see cref="ReplayDriverOptions.BatchSubmission"/>, <see cref="BlkFront.SubmitBatch"/>)
/// against its task path: the same outcome for every request, the same read contents, the same final disk.
/// </summary>
public class ReplayDriverBatchTests
{
    private const long DiskBytes = 1 << 20;

    /// <summary>What one replay gave: per request index its status, skip, write sequence and read content hash; the disk.</summary>
    private sealed class Run
    {
        public readonly SortedDictionary<long, (BlkifStatus Status, bool Skipped, ulong Sequence, ulong ReadHash)> Outcomes = new();
        public ReplayStatistics Statistics = null!;
        public byte[] Disk = [];
        public long Issued, Completed;
        public Exception? Failure;
    }

    private sealed class Observer(ReplayStatistics statistics, Run run, Action<long>? onCompleted) : IReplayObserver
    {
        public void FillWrite(in ReplayRequest request, ulong writeSequence, Span<byte> data) => ReplayData.Fill(data, request.Sector, writeSequence);

        public void OnCompleted(in ReplayCompletion c, ReadOnlySpan<byte> readData)
        {
            var r = c.Request;
            statistics.Record(new ReplayOutcome(c.Index, r.Frontend, r.Operation, r.Sector, r.Length, r.ExpectedStatus, c.Status, c.Skipped, c.WriteSequence, 0), readData);
            Assert.That(run.Outcomes.ContainsKey(c.Index), Is.False, $"request {c.Index} completed twice");
            run.Outcomes[c.Index] = (c.Status, c.Skipped, c.WriteSequence, readData.IsEmpty ? 0 : XxHash64.HashToUInt64(readData));
            onCompleted?.Invoke(run.Outcomes.Count);
        }
    }

    /// <summary>Every operation the driver knows, lengths from one sector to two ring requests' worth, a small hot region.</summary>
    private static List<ReplayRequest> Workload(int seed, int frontends, int count)
    {
        var rng = new Random(seed);
        var list = new List<ReplayRequest>();
        for (int i = 0; i < count; i++)
        {
            int pick = rng.Next(20);
            var op = pick switch
            {
                < 8 => BlkifOperation.Read,
                < 16 => BlkifOperation.Write,
                16 => BlkifOperation.WriteBarrier,
                17 => BlkifOperation.FlushDiskCache,
                _ => BlkifOperation.Discard,
            };
            // Up to 120 sectors: more than 11 segments, so some requests take two ring requests.
            uint length = op == BlkifOperation.FlushDiskCache && rng.Next(2) == 0 ? 0 : (uint)(rng.Next(1, rng.Next(4) == 0 ? 121 : 17) * 512);
            list.Add(new ReplayRequest(rng.Next(frontends), op, (ulong)rng.Next(512), length, 0));
        }
        return list;
    }

    private static async Task<Run> Replay(List<ReplayRequest> requests, bool batch, bool deterministic, int seed, int frontends, int queueDepth,
        Action<TapRuntime>? extra = null, CancellationToken ct = default, Action<long>? onCompleted = null, bool tapOnScheduler = false)
    {
        var run = new Run { Statistics = new ReplayStatistics(verify: true, sharedDisk: true, initiallyZero: true, frontends) };
        var disk = new MemoryBlockDevice(DiskBytes);
        await using (var rig = await EmulatorRig.StartAsync(new EmulatorRigOptions
        {
            Frontends = frontends, Deterministic = deterministic, Seed = seed,
            // What blktap replay runs with: guests and tap on the scheduler's thread, read-only grants not write-protected.
            TapOnScheduler = tapOnScheduler, ProtectReadOnlyGrants = !tapOnScheduler,
        }, rt =>
        {
            extra?.Invoke(rt);
            var mem = new BlockDeviceHook(disk);
            rt.RegisterControlHook("mem", mem);
            rt.RegisterRequestHook("mem", mem);
        }))
        {
            var driver = new ReplayDriver(rig, new ReplayDriverOptions { QueueDepth = queueDepth, SharedDisk = true, BatchSubmission = batch },
                new Observer(run.Statistics, run, onCompleted));
            try { await Waits.For(driver.RunAsync(requests, ct), "the replay"); }
            catch (Exception ex) when (ex is not AssertionException) { run.Failure = ex; }
            run.Issued = driver.Issued;
            run.Completed = driver.Completed;
        }
        run.Disk = new byte[DiskBytes];
        disk.Read(0, run.Disk);
        return run;
    }

    private static void AssertSame(Run batch, Run tasks)
    {
        Assert.That(batch.Failure, Is.Null, batch.Failure?.ToString());
        Assert.That(tasks.Failure, Is.Null, tasks.Failure?.ToString());
        Assert.That(batch.Outcomes.Count, Is.EqualTo(tasks.Outcomes.Count));
        foreach (var (index, outcome) in tasks.Outcomes)
            Assert.That(batch.Outcomes[index], Is.EqualTo(outcome), $"request {index}");
        Assert.That(batch.Statistics.Mismatches, Is.EqualTo(tasks.Statistics.Mismatches), string.Join("; ", batch.Statistics.FirstMismatches));
        Assert.That(batch.Statistics.ReadsChecked, Is.EqualTo(tasks.Statistics.ReadsChecked));
        Assert.That(batch.Disk.AsSpan().SequenceEqual(tasks.Disk), Is.True, "the final disks differ");
    }

    [FsCheck.NUnit.Property(MaxTest = 12)]
    public void RunAsync_GeneratedTrace_BatchPathGivesTheTaskPathsResults(PositiveInt seed, bool deterministic)
    {
        int frontends = 1 + seed.Get % 3;
        int queueDepth = 1 + seed.Get * 7 % 48; // beyond the 32-slot ring on one frontend: the ring fills
        var requests = Workload(seed.Get, frontends, 250);
        var batch = Replay(requests, batch: true, deterministic, seed.Get, frontends, queueDepth).GetAwaiter().GetResult();
        var tasks = Replay(requests, batch: false, deterministic, seed.Get, frontends, queueDepth).GetAwaiter().GetResult();
        Assert.That(batch.Statistics.ReadsChecked, Is.GreaterThan(20));
        AssertSame(batch, tasks);
        Assert.That(batch.Statistics.Mismatches, Is.EqualTo(0), string.Join("; ", batch.Statistics.FirstMismatches));
        Assert.That(batch.Statistics.Errors, Is.EqualTo(0), string.Join("; ", batch.Statistics.FirstErrors));
    }

    [FsCheck.NUnit.Property(MaxTest = 8)]
    public void RunAsync_TapOnTheSchedulerThread_GivesTheTaskPathsResultsWithTheTapOnItsOwnThread(PositiveInt seed, bool batchPath)
    {
        int frontends = 1 + seed.Get % 3;
        int queueDepth = 1 + seed.Get * 7 % 48;
        var requests = Workload(seed.Get, frontends, 250);
        var oneThread = Replay(requests, batch: batchPath, deterministic: false, seed.Get, frontends, queueDepth, tapOnScheduler: true).GetAwaiter().GetResult();
        var tasks = Replay(requests, batch: false, deterministic: false, seed.Get, frontends, queueDepth).GetAwaiter().GetResult();
        Assert.That(oneThread.Statistics.ReadsChecked, Is.GreaterThan(20));
        AssertSame(oneThread, tasks);
        Assert.That(oneThread.Statistics.Mismatches, Is.EqualTo(0), string.Join("; ", oneThread.Statistics.FirstMismatches));
        Assert.That(oneThread.Statistics.Errors, Is.EqualTo(0), string.Join("; ", oneThread.Statistics.FirstErrors));
    }

    [TestCase(true)]
    [TestCase(false)]
    public async Task RunAsync_QueueDeeperThanTheRing_EveryRequestCompletesVerified(bool deterministic)
    {
        // 128 requests of up to two ring requests each, one frontend: far more than the ring's 32 slots at once.
        var rng = new Random(5);
        var requests = Enumerable.Range(0, 600)
            .Select(i => new ReplayRequest(0, i % 3 == 0 ? BlkifOperation.Write : BlkifOperation.Read, (ulong)(i * 64 % 1900), (uint)(rng.Next(1, 121) * 512), 0))
            .ToList();
        var batch = await Replay(requests, batch: true, deterministic, 5, 1, 128);
        var tasks = await Replay(requests, batch: false, deterministic, 5, 1, 128);
        AssertSame(batch, tasks);
        Assert.That(batch.Statistics.Mismatches, Is.EqualTo(0), string.Join("; ", batch.Statistics.FirstMismatches));
        Assert.That(batch.Completed, Is.EqualTo(600));
    }

    [TestCase(true)]
    [TestCase(false)]
    public async Task RunAsync_TerminatorFailsSomeRequests_SameErrorsAsTheTaskPath(bool deterministic)
    {
        // A failing terminator: every request touching sectors 100..199 answers ERROR (a write split into two ring
        // requests may then be half written: the verifier's mismatches must be the same on both paths).
        static void Failing(TapRuntime rt) => rt.RegisterRequestHook("fail", Hook.Request(r =>
        {
            if (r.Sector < 200 && r.Sector + r.SectorCount > 100 && r.Operation is BlkifOperation.Read or BlkifOperation.Write)
            {
                r.Status = BlkifStatus.Error;
                return HookResult.Respond;
            }
            return HookResult.Pass;
        }));
        var requests = Workload(11, 2, 300);
        var batch = await Replay(requests, batch: true, deterministic, 11, 2, 8, Failing);
        var tasks = await Replay(requests, batch: false, deterministic, 11, 2, 8, Failing);
        Assert.That(batch.Outcomes.Values.Count(o => o.Status == BlkifStatus.Error), Is.GreaterThan(5));
        AssertSame(batch, tasks);
        Assert.That(batch.Statistics.Errors, Is.EqualTo(tasks.Statistics.Errors));
    }

    [TestCase(true)]
    [TestCase(false)]
    public async Task RunAsync_CancelledMidway_StopsIssuingDrainsAndThrows(bool deterministic)
    {
        var requests = Workload(3, 2, 2000);
        using var cts = new CancellationTokenSource();
        var run = await Replay(requests, batch: true, deterministic, 3, 2, 8, ct: cts.Token, onCompleted: n => { if (n == 100) cts.Cancel(); });
        Assert.That(run.Failure, Is.InstanceOf<OperationCanceledException>());
        Assert.That(run.Issued, Is.LessThan(2000));
        Assert.That(run.Completed, Is.EqualTo(run.Issued), "what was issued completed before the replay ended");
        Assert.That(run.Statistics.Mismatches, Is.EqualTo(0));
    }

    [Test]
    public async Task RunAsync_RequestNamesMissingFrontend_ThrowsAfterDrainingWhatWasIssued()
    {
        var requests = Workload(9, 2, 50);
        requests.Add(new ReplayRequest(5, BlkifOperation.Read, 0, 512, 0));
        requests.AddRange(Workload(10, 2, 50));
        var run = await Replay(requests, batch: true, deterministic: true, 9, 2, 4);
        Assert.That(run.Failure, Is.InstanceOf<ArgumentOutOfRangeException>());
        Assert.That(run.Issued, Is.EqualTo(50));
        Assert.That(run.Completed, Is.EqualTo(50));
    }

    /// <summary>An observer that looks at no read data (blktap replay without --verify).</summary>
    private sealed class LazyObserver : IReplayObserver
    {
        public readonly SortedDictionary<long, (BlkifStatus Status, bool Skipped, ulong Sequence)> Outcomes = new();
        public int Fills, NonEmptyReads;
        public bool WantsReadData => false;
        public void FillWrite(in ReplayRequest request, ulong writeSequence, Span<byte> data)
        {
            Fills++;
            ReplayData.Fill(data, request.Sector, writeSequence);
        }
        public void OnCompleted(in ReplayCompletion c, ReadOnlySpan<byte> readData)
        {
            if (!readData.IsEmpty) NonEmptyReads++;
            Outcomes[c.Index] = (c.Status, c.Skipped, c.WriteSequence);
        }
    }

    [FsCheck.NUnit.Property(MaxTest = 8)]
    public void RunAsync_ObserverWantsNoDataBack_SameOutcomesAsTheTaskPathWithoutCopies(PositiveInt seed, bool deterministic)
    {
        int frontends = 1 + seed.Get % 3;
        int queueDepth = 1 + seed.Get * 7 % 48;
        var requests = Workload(seed.Get, frontends, 250);
        var tasks = Replay(requests, batch: false, deterministic, seed.Get, frontends, queueDepth).GetAwaiter().GetResult();
        Assert.That(tasks.Failure, Is.Null, tasks.Failure?.ToString());
        var lazy = new LazyObserver();
        RunWith(lazy, requests, deterministic, seed.Get, frontends, queueDepth).GetAwaiter().GetResult();
        Assert.That(lazy.Outcomes.Count, Is.EqualTo(tasks.Outcomes.Count));
        foreach (var (index, o) in tasks.Outcomes)
            Assert.That(lazy.Outcomes[index], Is.EqualTo((o.Status, o.Skipped, o.Sequence)), $"request {index}");
        Assert.That(lazy.NonEmptyReads, Is.EqualTo(0), "no read data handed back");
        Assert.That(lazy.Fills, Is.EqualTo(requests.Count(r => r.WritesData)), "every write filled");
    }

    [Test]
    public async Task RunAsync_ObserverWantsNoDataBack_WritesStillReachTheDiskWithTheirData()
    {
        const int queueDepth = 8;
        var requests = Enumerable.Range(0, 2000)
            .Select(i => new ReplayRequest(0, i % 3 == 0 ? BlkifOperation.Read : BlkifOperation.Write, (ulong)(i * 8 % (DiskBytes / 512)), 4096, 0))
            .ToList();
        var lazy = new LazyObserver();
        var disk = await RunWith(lazy, requests, deterministic: false, seed: 1, frontends: 1, queueDepth);
        Assert.That(lazy.Outcomes.Values.All(o => o.Status == BlkifStatus.Okay), Is.True);
        Assert.That(lazy.NonEmptyReads, Is.EqualTo(0), "no read handed its data back");
        // Each written block holds ReplayData of the last write to it (its sector and write sequence).
        var last = new Dictionary<ulong, ulong>();
        foreach (var (index, o) in lazy.Outcomes)
            if (requests[(int)index].WritesData) last[requests[(int)index].Sector] = o.Sequence;
        Assert.That(last, Has.Count.GreaterThan(10));
        var expected = new byte[4096];
        foreach (var (sector, sequence) in last)
        {
            ReplayData.Fill(expected, sector, sequence);
            Assert.That(disk.AsSpan((int)sector * 512, 4096).SequenceEqual(expected), Is.True, $"sector {sector}, write {sequence}");
        }
    }

    private static async Task<byte[]> RunWith(IReplayObserver observer, List<ReplayRequest> requests, bool deterministic, int seed, int frontends, int queueDepth)
    {
        var disk = new MemoryBlockDevice(DiskBytes);
        await using (var rig = await EmulatorRig.StartAsync(new EmulatorRigOptions
        {
            Frontends = frontends, Deterministic = deterministic, Seed = seed, TapOnScheduler = !deterministic, ProtectReadOnlyGrants = deterministic,
        }, rt =>
        {
            var mem = new BlockDeviceHook(disk);
            rt.RegisterControlHook("mem", mem);
            rt.RegisterRequestHook("mem", mem);
        }))
        {
            var driver = new ReplayDriver(rig, new ReplayDriverOptions { QueueDepth = queueDepth, SharedDisk = true, BatchSubmission = true }, observer);
            await Waits.For(driver.RunAsync(requests), "the replay");
        }
        var bytes = new byte[DiskBytes];
        disk.Read(0, bytes);
        return bytes;
    }

    private sealed class NullObserver : IReplayObserver
    {
        public long Failed;
        public void FillWrite(in ReplayRequest request, ulong writeSequence, Span<byte> data) { }
        public void OnCompleted(in ReplayCompletion completion, ReadOnlySpan<byte> readData)
        {
            if (completion.Status != BlkifStatus.Okay) Failed++;
        }
    }

    [Test]
    public async Task RunAsync_BatchPathSteadyState_SchedulerAllocatesOnlyTheGrantEntry()
    {
        // Page-aligned 4 KiB requests (one grant each) on a warm rig; the scheduler thread runs the whole batch path.
        await using var rig = await EmulatorRig.StartAsync(new EmulatorRigOptions { Frontends = 1, RandomFirstSector = false }, rt =>
        {
            var mem = new BlockDeviceHook(new MemoryBlockDevice(DiskBytes));
            rt.RegisterControlHook("mem", mem);
            rt.RegisterRequestHook("mem", mem);
        });
        var requests = Enumerable.Range(0, 60_000)
            .Select(i => new ReplayRequest(0, i % 2 == 0 ? BlkifOperation.Read : BlkifOperation.Write, (ulong)(i * 8 % (DiskBytes / 512)), 4096, 0))
            .ToArray();
        long Allocated()
        {
            long bytes = 0;
            using var done = new ManualResetEventSlim();
            rig.Emulator.Post(() => { bytes = GC.GetAllocatedBytesForCurrentThread(); done.Set(); });
            Assert.That(done.Wait(Waits.Deadline), Is.True, "the scheduler ran the probe");
            return bytes;
        }
        var observer = new NullObserver();
        var options = new ReplayDriverOptions { QueueDepth = 32 };
        await Waits.For(new ReplayDriver(rig, options, observer).RunAsync(requests.Take(20_000)), "the warm-up replay");
        long before = Allocated();
        await Waits.For(new ReplayDriver(rig, options, observer).RunAsync(requests), "the measured replay");
        long after = Allocated();
        Assert.That(observer.Failed, Is.EqualTo(0));
        double perRequest = (after - before) / (double)requests.Length;
        TestContext.Out.WriteLine($"scheduler thread allocated {after - before} bytes for {requests.Length} replayed requests ({perRequest:F1} B/request)");
        // GrantTable.GrantAccess's 40-byte GrantEntry per granted page is the emulator's; the driver's run itself (its slot
        // table, its per-frontend staging arrays and per-slot buffers: about 150 KiB once) adds under 8 B a request.
        Assert.That(perRequest, Is.LessThan(48), $"{after - before} bytes on the scheduler for {requests.Length} requests");
    }
}
