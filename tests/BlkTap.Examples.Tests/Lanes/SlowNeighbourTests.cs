using System.Diagnostics;
using BlkTap.Chains;
using BlkTap.Testing;
using BlkTap.Testing.Rigs;
using NUnit.Framework;

namespace BlkTap.Examples.Tests.Lanes;

/// <summary>
/// Issue 17, item 3: a session on a slow device must not raise another session's p99 latency by more than 20%. Two
/// buffer sessions on one runtime (one loop thread) under one <c>img</c> tap: the fast one on a page-cached image, the
/// slow one on an image whose every read and write takes 20 ms (a storage file without the non-blocking capability, so
/// the img tap hands all of it to the image's worker). On main, where img did its I/O on the loop, the fast session's
/// p99 went from tens of microseconds to tens of milliseconds.
/// </summary>
[NonParallelizable]
public class SlowNeighbourTests
{
    private static readonly TimeSpan SlowDelay = TimeSpan.FromMilliseconds(20);
    private const int Rounds = 8;          // quiet and loaded blocks, alternating, so the machine's drift hits both
    private const int QuietSamples = 1500; // fast requests per quiet block
    private const int LoadedSlowOps = 6;   // slow requests completed per loaded block (about 120 ms of slow I/O)
    private const int SlowDepth = 4;
    private const int Attempts = 3;        // a busy 2-core machine: the bound must hold in one of three measurements

    [Test]
    public void FastSession_SlowImageUnderAnotherSession_P99WithinTwentyPercentOfQuiet()
    {
        using var dir = new TempDir();
        string fastPath = Directory.Exists("/dev/shm") ? Path.Combine("/dev/shm", $"blktap-fast-{Guid.NewGuid():N}.raw") : dir.File("fast.raw");
        string slowPath = dir.File("slow.raw");
        const long Bytes = 8L << 20;
        foreach (var p in new[] { fastPath, slowPath }) { using var f = File.Create(p); f.SetLength(Bytes); }
        File.WriteAllBytes(fastPath, new byte[Bytes]); // in the page cache
        var slowFiles = new List<SlowFile>();
        var storage = new WrappingStorage((path, f) =>
        {
            if (path != slowPath) return null;
            var s = new SlowFile(f, SlowDelay);
            lock (slowFiles) slowFiles.Add(s);
            return s;
        });
        var tap = new ImgTap(null, readOnly: false, storage);
        var results = new List<string>();
        try
        {
            using var h = new RuntimeHarness(rt => TapChain.Register(rt, [tap]));
            var fastSession = h.Attach("fast", 0, fastPath);
            var slowSession = h.Attach("slow", 0, slowPath);
            Assert.That(fastSession.Sectors, Is.EqualTo((ulong)Bytes / 512));
            Measure(h, fastSession, slowSession); // warm-up (JIT tiers, the lane's thread, the page cache): not counted
            for (int attempt = 1; attempt <= Attempts; attempt++)
            {
                var (quiet, loaded) = Measure(h, fastSession, slowSession);
                results.Add($"attempt {attempt}: quiet p99 {quiet * 1e6:F0} us, with the slow neighbour {loaded * 1e6:F0} us ({loaded / quiet:F2}x)");
                TestContext.Progress.WriteLine(results[^1]);
                if (loaded <= quiet * 1.2) break;
            }
        }
        finally
        {
            tap.Dispose();
            File.Delete(fastPath);
        }
        Assert.That(slowFiles.Sum(f => f.Calls), Is.GreaterThan(Rounds * LoadedSlowOps), "the slow image was used");
        Assert.That(results.Any(r => r.EndsWith("x)") && Ratio(r) <= 1.2), Is.True,
            "the fast session's p99 with a slow neighbour stays within 1.2x of its quiet p99: " + string.Join("; ", results));
    }

    private static double Ratio(string line) => double.Parse(line[(line.LastIndexOf('(') + 1)..^2], System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>Alternates quiet and loaded blocks; returns the fast session's p99 latency (seconds) in each.</summary>
    private static (double Quiet, double Loaded) Measure(RuntimeHarness h, BufferSession fastSession, BufferSession slowSession)
    {
        var signal = new SemaphoreSlim(0);
        var fast = new Driver(h, fastSession, depth: 1, signal, seed: 1);
        var slow = new Driver(h, slowSession, depth: SlowDepth, signal, seed: 2);
        var quiet = new List<long>(); var loaded = new List<long>();
        fast.Start();
        try
        {
            for (int round = 0; round < Rounds; round++)
            {
                // Quiet: nothing of the slow session in flight.
                Waits.ForSignal(signal, () => slow.InFlight == 0, "the slow session's requests to finish");
                fast.Record(quiet, QuietSamples);
                Waits.ForSignal(signal, () => fast.Recording == null, "a quiet block of fast requests");
                // Loaded: the slow session keeps SlowDepth requests queued on its image for LoadedSlowOps completions.
                int slowDone = slow.Completed;
                slow.Start();
                Waits.ForSignal(signal, () => slow.InFlight > 0, "the slow session to start");
                fast.Record(loaded, int.MaxValue);
                Waits.ForSignal(signal, () => slow.Completed >= slowDone + LoadedSlowOps, "slow requests to complete");
                fast.StopRecording();
                slow.Stop();
            }
        }
        finally
        {
            fast.Stop();
            slow.Stop();
        }
        Waits.ForSignal(signal, () => fast.InFlight == 0 && slow.InFlight == 0, "both sessions to go quiet");
        Assert.That(quiet.Count, Is.GreaterThanOrEqualTo(Rounds * QuietSamples));
        Assert.That(loaded.Count, Is.GreaterThanOrEqualTo(Rounds), "fast requests completed while the slow one ran");
        Assert.That(fast.Failures + slow.Failures, Is.Zero, "every request answered Okay");
        return (P99(quiet), P99(loaded));
    }

    private static double P99(List<long> ticks)
    {
        ticks.Sort();
        return ticks[(int)Math.Min(ticks.Count - 1, Math.Ceiling(ticks.Count * 0.99) - 1)] / (double)Stopwatch.Frequency;
    }

    /// <summary>
    /// A closed-loop workload on one session: <c>depth</c> requests, each resubmitted from its completion (on the loop)
    /// while running (posted, for the loop's next pass), 4 KiB random reads and writes; the completion records its latency when asked.
    /// </summary>
    private sealed class Driver
    {
        private readonly BufferSession _session;
        private readonly BufferRequest[] _requests;
        private readonly long[] _submitted;
        private readonly Action[] _resend;
        private readonly TapRuntime _runtime;
        private readonly SemaphoreSlim _signal;
        private readonly Random _random;
        private readonly ulong _slots;
        private volatile bool _running;
        private int _inFlight, _completed, _failures, _limit;
        private List<long>? _recording;

        public Driver(RuntimeHarness h, BufferSession session, int depth, SemaphoreSlim signal, int seed)
        {
            _session = session;
            _signal = signal;
            _random = new Random(seed);
            _slots = session.Sectors / 8;
            _requests = new BufferRequest[depth];
            _submitted = new long[depth];
            _resend = new Action[depth];
            _runtime = h.Runtime;
            for (int i = 0; i < depth; i++)
            {
                var r = new BufferRequest { Data = h.Alloc(4096), Length = 4096, UserToken = (ulong)i, Completed = OnCompleted };
                _requests[i] = r;
                _resend[i] = () => Send(r);
            }
        }

        public int InFlight => Volatile.Read(ref _inFlight);
        public int Completed => Volatile.Read(ref _completed);
        public int Failures => Volatile.Read(ref _failures);
        public List<long>? Recording => Volatile.Read(ref _recording);

        public void Record(List<long> into, int count) { _limit = count == int.MaxValue ? int.MaxValue : into.Count + count; Volatile.Write(ref _recording, into); }
        public void StopRecording() => Volatile.Write(ref _recording, null);

        public void Start()
        {
            _running = true;
            foreach (var r in _requests) Send(r);
        }

        public void Stop() => _running = false;

        private void Send(BufferRequest r)
        {
            Interlocked.Increment(ref _inFlight);
            lock (_random)
            {
                r.Operation = _random.Next(2) == 0 ? BlkifOperation.Read : BlkifOperation.Write;
                r.Sector = (ulong)_random.NextInt64((long)_slots) * 8;
            }
            _submitted[(int)r.UserToken] = Stopwatch.GetTimestamp();
            _session.Submit(r);
        }

        /// <summary>Loop thread.</summary>
        private void OnCompleted(BufferRequest r)
        {
            long latency = Stopwatch.GetTimestamp() - _submitted[(int)r.UserToken];
            if (r.Status != BlkifStatus.Okay) Interlocked.Increment(ref _failures);
            var recording = _recording;
            bool signal = false;
            if (recording != null)
            {
                recording.Add(latency);
                if (recording.Count >= _limit) { Volatile.Write(ref _recording, null); signal = true; }
            }
            Interlocked.Increment(ref _completed);
            Interlocked.Decrement(ref _inFlight);
            // The next request starts in the loop's next pass: a session drains what is queued for it in one go, so a
            // request answered on the loop and resubmitted at once would keep that pass going for ever.
            if (_running) _runtime.Post(_resend[(int)r.UserToken]);
            else signal = true;
            if (signal || _requests.Length > 1) _signal.Release();
        }
    }
}
