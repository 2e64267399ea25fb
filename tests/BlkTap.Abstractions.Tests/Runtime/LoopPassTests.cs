using System.Runtime.InteropServices;
using BlkTap.Linux;
using FsCheck;
using FsCheck.Fluent;
using BlkTap.Testing;
using NUnit.Framework;
using BlkTap.Testing.Rigs;

namespace BlkTap.Abstractions.Tests.Runtime;

/// <summary>Loop-pass features a transport served on the loop relies on: inline submission, end-of-pass handlers, segment runs.</summary>
[TestFixture]
public class LoopPassTests
{
    private sealed class CountingPassEnd(TapRuntime runtime) : IEndOfPassHandler
    {
        public int Runs;
        public bool Again;
        public bool RanOnLoop = true;
        public readonly SemaphoreSlim Ran = new(0);
        public void OnEndOfPass()
        {
            Runs++;
            Ran.Release();
            RanOnLoop &= runtime.IsLoopThread;
            if (Again) { Again = false; runtime.RunAtEndOfPass(this); }
        }
    }

    [Test]
    public void RunAtEndOfPass_ScheduledFromAPostedAction_RunsOnceAfterThePassOnTheLoop()
    {
        using var h = new RuntimeHarness(_ => { });
        var handler = new CountingPassEnd(h.Runtime);
        int seenInAction = -1;
        h.OnLoop(() => { h.Runtime.RunAtEndOfPass(handler); seenInAction = handler.Runs; });
        h.OnLoop(() => { });
        Assert.That(seenInAction, Is.EqualTo(0), "not run inside the action that scheduled it");
        Assert.That(handler.Runs, Is.EqualTo(1));
        Assert.That(handler.RanOnLoop, Is.True);
    }

    [Test]
    public void RunAtEndOfPass_HandlerReschedulesItself_RunsAgainInTheNextPass()
    {
        using var h = new RuntimeHarness(_ => { });
        var handler = new CountingPassEnd(h.Runtime) { Again = true };
        h.OnLoop(() => h.Runtime.RunAtEndOfPass(handler));
        for (int run = 1; run <= 2; run++)
            Assert.That(handler.Ran.Wait(Waits.Deadline), Is.True, $"run {run}: the loop slept with a handler pending");
        h.OnLoop(() => { });
        Assert.That(handler.Runs, Is.EqualTo(2));
    }

    [TestCase(false)]
    [TestCase(true)]
    public unsafe void SubmitOnLoop_TerminatorAnswersSynchronously_CompletesBeforeReturning(bool epoll)
    {
        var disk = new MemoryBlockDevice(64 * 512);
        using var h = new RuntimeHarness(r =>
        {
            var hook = new BlockDeviceHook(disk);
            r.RegisterControlHook("disk", hook);
            r.RegisterRequestHook("disk", hook);
        }, epoll ? new EpollLoopWaiter() : null);
        var s = h.Attach("inline", 64);
        var buf = h.Alloc(4096);
        new Span<byte>((void*)buf, 4096).Fill(0x3c);
        BlkifStatus? status = null;
        bool completedInside = false;
        h.OnLoop(() =>
        {
            s.SubmitOnLoop(new BufferRequest { Operation = BlkifOperation.Write, Sector = 8, Data = buf, Length = 4096, Completed = b => status = b.Status });
            completedInside = status != null;
        });
        Assert.That(completedInside, Is.True, "a synchronous terminator answers within SubmitOnLoop");
        Assert.That(status, Is.EqualTo(BlkifStatus.Okay));
        var back = new byte[4096];
        Assert.That(disk.Read(8, back), Is.EqualTo(BlkifStatus.Okay));
        Assert.That(back, Is.All.EqualTo((byte)0x3c));
        Assert.That(s.Outstanding, Is.EqualTo(0));
    }

    [Test]
    public void SubmitOnLoop_FromAnotherThread_Refused()
    {
        using var h = new RuntimeHarness(_ => { });
        var s = h.Attach("inline", 64);
        Assert.That(() => s.SubmitOnLoop(new BufferRequest { Operation = BlkifOperation.Read, Length = 512, Data = h.Alloc(512) }),
            Throws.InvalidOperationException.With.Message.Contains("loop thread"));
    }

    public sealed record Layout(int[] Lengths, bool[] Gaps);

    private static Arbitrary<Layout> Layouts() =>
        (from n in Gen.Choose(1, 20)
         from lengths in Gen.ArrayOf(Gen.Choose(1, 8).Select(k => k * 512), n)
         from gaps in Gen.ArrayOf(ArbMap.Default.GeneratorFor<bool>(), n)
         select new Layout(lengths, gaps)).ToArbitrary();

    [FsCheck.NUnit.Property(MaxTest = 200)]
    public Property NextRun_AnySegmentLayout_RunsCoverEverySegmentAndMergeOnlyContiguousOnes() =>
        Prop.ForAll(Layouts(), layout =>
        {
            // Segments laid out one after another; a "gap" breaks memory contiguity before that segment, and every
            // third gap also breaks disk contiguity.
            var segs = new TapSegment[layout.Lengths.Length];
            nint addr = 0x10000;
            ulong sector = 100;
            for (int i = 0; i < segs.Length; i++)
            {
                if (i > 0 && layout.Gaps[i]) { addr += 4096; if (i % 3 == 0) sector += 7; }
                segs[i] = new TapSegment(addr, layout.Lengths[i], sector);
                addr += layout.Lengths[i];
                sector += (ulong)(layout.Lengths[i] / 512);
            }
            var runs = new List<TapSegment>();
            for (int i = 0; i < segs.Length;) runs.Add(BlockDeviceHook.NextRun(segs, ref i));
            // The runs, cut back into bytes, are exactly the segments' bytes (address and sector of every byte).
            var fromSegs = segs.SelectMany(s => Enumerable.Range(0, s.Length / 512).Select(k => (s.Address + k * 512, s.Sector + (ulong)k)));
            var fromRuns = runs.SelectMany(s => Enumerable.Range(0, s.Length / 512).Select(k => (s.Address + k * 512, s.Sector + (ulong)k)));
            bool same = fromSegs.SequenceEqual(fromRuns);
            // And every boundary between runs is a real discontinuity.
            bool maximal = runs.Zip(runs.Skip(1)).All(p => p.First.Address + p.First.Length != p.Second.Address
                || p.First.Sector + (ulong)(p.First.Length / 512) != p.Second.Sector);
            int expectedRuns = 1 + Enumerable.Range(1, segs.Length - 1).Count(i => layout.Gaps[i]);
            return same && maximal && runs.Count == expectedRuns;
        });

    /// <summary>A waiter that records what is watched and reports whatever the test queues.</summary>
    private sealed class ScriptedWaiter : ILoopWaiter
    {
        private readonly SemaphoreSlim _wake = new(0);
        public readonly System.Collections.Concurrent.ConcurrentQueue<PollReady> Reports = new();
        public readonly System.Collections.Concurrent.ConcurrentDictionary<int, long> Watched = new();
        public bool SupportsDescriptors => true;
        public void Wake() => _wake.Release();
        public int Wait(int timeoutMs, Span<PollReady> ready)
        {
            if (timeoutMs != 0 && Reports.IsEmpty) _wake.Wait(timeoutMs < 0 ? 50 : Math.Min(timeoutMs, 50));
            int n = 0;
            while (n < ready.Length && Reports.TryDequeue(out var r)) ready[n++] = r;
            return n;
        }
        public void Watch(int fd, PollEvents interest, long token) => Watched[fd] = token;
        public void Modify(int fd, PollEvents interest, long token) => Watched[fd] = token;
        public void Unwatch(int fd) => Watched.TryRemove(fd, out _);
        public void Dispose() { }
    }

    [Test]
    public void AttachPoll_StaleReportForADetachedRegistrationWhoseSlotWasReused_Ignored()
    {
        var waiter = new ScriptedWaiter();
        using var h = new RuntimeHarness(_ => { }, waiter);
        int a = 0, b = 0;
        var regA = h.Runtime.AttachPoll(5, PollEvents.Readable, _ => Interlocked.Increment(ref a));
        long tokenA = waiter.Watched[5];
        regA.Dispose();
        h.Runtime.AttachPoll(6, PollEvents.Readable, _ => Interlocked.Increment(ref b));
        long tokenB = waiter.Watched[6];
        Assert.That(tokenB & 0xffffffff, Is.EqualTo(tokenA & 0xffffffff), "the slot is reused");
        Assert.That(tokenB, Is.Not.EqualTo(tokenA), "under a new token");
        waiter.Reports.Enqueue(new PollReady(tokenA, PollEvents.Readable));
        waiter.Reports.Enqueue(new PollReady(tokenB, PollEvents.Readable));
        h.Runtime.Post(() => { });
        // The scripted waiter hands out whatever is queued at the next Wait: two loop passes deliver both reports.
        h.OnLoop(() => { });
        h.OnLoop(() => { });
        Assert.That(b, Is.EqualTo(1), "the live registration's report is delivered");
        Assert.That(a, Is.EqualTo(0), "the stale report reaches nobody");
    }
}
