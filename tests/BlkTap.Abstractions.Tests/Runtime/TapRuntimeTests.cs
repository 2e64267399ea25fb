using System.Collections.Concurrent;
using FsCheck;
using FsCheck.Fluent;
using BlkTap.Testing;
using NUnit.Framework;
using BlkTap.Testing.Rigs;

namespace BlkTap.Abstractions.Tests.Runtime;

public class TapRuntimeTests
{
    [Test]
    public async Task RegisterRequestHook_SeveralHooks_RunInRegistrationOrder()
    {
        var order = new ConcurrentQueue<string>();
        using var h = new RuntimeHarness(rt =>
        {
            foreach (var name in new[] { "c", "a", "b" })
                rt.RegisterRequestHook(name, Hook.Request(r => { order.Enqueue(name); return HookResult.Pass; }));
            rt.RegisterRequestHook("end", Hook.Request(r => { order.Enqueue("end"); r.Status = BlkifStatus.Okay; return HookResult.Respond; }));
            rt.RegisterRequestHook("never", Hook.Request(r => { order.Enqueue("never"); return HookResult.Pass; }));
        });
        var s = h.Attach("s", 100);
        var status = await h.SubmitAsync(s, BlkifOperation.Read, 0, h.Alloc(512), 512, 1);
        Assert.That(status, Is.EqualTo(BlkifStatus.Okay));
        Assert.That(order, Is.EqualTo(new[] { "c", "a", "b", "end" }));
    }

    [Test]
    public async Task Submit_NoHookResponds_AnswersNotSupported()
    {
        using var h = new RuntimeHarness(rt => rt.RegisterRequestHook("pass", Hook.Request(_ => HookResult.Pass)));
        var s = h.Attach("s", 100);
        Assert.That(await h.SubmitAsync(s, BlkifOperation.Read, 0, h.Alloc(512), 512, 1), Is.EqualTo(BlkifStatus.NotSupported));
    }

    [Test]
    public async Task Submit_HookThrows_AnswersErrorAndKeepsServing()
    {
        int calls = 0;
        using var h = new RuntimeHarness(rt => rt.RegisterRequestHook("boom", Hook.Request(r =>
        {
            if (Interlocked.Increment(ref calls) == 1) throw new InvalidOperationException("boom");
            return HookResult.Respond;
        })));
        var s = h.Attach("s", 100);
        Assert.That(await h.SubmitAsync(s, BlkifOperation.Read, 0, h.Alloc(512), 512, 1), Is.EqualTo(BlkifStatus.Error));
        Assert.That(await h.SubmitAsync(s, BlkifOperation.Read, 0, h.Alloc(512), 512, 2), Is.EqualTo(BlkifStatus.Okay));
        Assert.That(h.Diagnostics.Any(d => d.Contains("boom")), Is.True);
    }

    [Test]
    public Task Submit_BackendPlacement_PassedRequestsReachBackendAndResponseHooks() => BackendPlacementRoundTrip(waiter: null);

    [Test]
    public Task Submit_BackendPlacementOnEpollWaiter_PassedRequestsReachBackendAndResponseHooks()
    {
        if (!BlkTap.Linux.EpollLoopWaiter.IsSupported) Assert.Ignore("EpollLoopWaiter needs Linux on x86_64");
        return BackendPlacementRoundTrip(new BlkTap.Linux.EpollLoopWaiter());
    }

    private static async Task BackendPlacementRoundTrip(ILoopWaiter? waiter)
    {
        var device = new MemoryBlockDevice(1 << 20);
        var seen = new ConcurrentQueue<ulong>();
        using var h = new RuntimeHarness(rt =>
        {
            rt.RegisterRequestHook("pass", Hook.Request(_ => HookResult.Pass));
            rt.RegisterResponseHook("watch", Hook.Response(r => seen.Enqueue(r.Id)));
            rt.Backend = new DeviceBackend(device);
        }, waiter);
        var s = h.Attach("s", device.SectorCount);
        var buf = h.Alloc(4096);
        unsafe { new Span<byte>((void*)buf, 4096).Fill(0x5A); }
        Assert.That(await h.SubmitAsync(s, BlkifOperation.Write, 8, buf, 4096, 7), Is.EqualTo(BlkifStatus.Okay));
        var back = new byte[4096];
        device.Read(8, back);
        Assert.That(back, Is.All.EqualTo(0x5A));
        Assert.That(seen, Is.EqualTo(new ulong[] { 7 }));
    }

    [Test]
    public async Task Submit_OutOfRangeRequest_RejectedBeforeHooks()
    {
        int hookCalls = 0;
        using var h = new RuntimeHarness(rt => rt.RegisterRequestHook("count", Hook.Request(_ => { hookCalls++; return HookResult.Respond; })));
        var s = h.Attach("s", 16);
        Assert.That(await h.SubmitAsync(s, BlkifOperation.Read, 15, h.Alloc(1024), 1024, 1), Is.EqualTo(BlkifStatus.Error));
        Assert.That(hookCalls, Is.Zero);
    }

    [Test]
    public async Task AttachSession_ControlHook_SeesImageIdAndSetsSize()
    {
        var events = new ConcurrentQueue<(ControlEventKind, string?)>();
        using var h = new RuntimeHarness(rt => rt.RegisterControlHook("ctl", Hook.Control(e =>
        {
            events.Enqueue((e.Kind, e.Session.ImageId));
            if (e.Kind == ControlEventKind.Attach) e.Session.Sectors = 4242;
        })));
        var s = h.Attach("s", 0, imageId: "disk-7.raw");
        h.OnLoop(() => h.Runtime.CloseSession(s));
        Assert.That(s.Sectors, Is.EqualTo(4242UL));
        Assert.That(events, Is.EqualTo(new[] { (ControlEventKind.Attach, (string?)"disk-7.raw"), (ControlEventKind.Connect, "disk-7.raw"), (ControlEventKind.Disconnect, "disk-7.raw") }));
        await Task.CompletedTask;
    }

    /// <summary>
    /// A hook steals a random subset of requests from several sessions and injects their responses
    /// later, out of order, from other threads: every request gets exactly one response, with its own
    /// id, in its own session, and the response hook sees each exactly once.
    /// </summary>
    [FsCheck.NUnit.Property(MaxTest = 60)]
    public Property InjectResponse_RandomStealsFromOtherThreads_EveryRequestAnsweredOnceWithItsId()
    {
        var gen = from sessions in Gen.Choose(1, 4)
                  from count in Gen.Choose(1, 80)
                  from steals in Gen.ListOf(Gen.Elements(true, false), count)
                  from seed in Gen.Choose(0, int.MaxValue)
                  select (sessions, steals.ToArray(), seed);
        return Prop.ForAll(gen.ToArbitrary(), t => RunStealScenario(t.sessions, t.Item2, t.seed));
    }

    private static bool RunStealScenario(int sessionCount, bool[] steals, int seed)
    {
        var stolen = new ConcurrentQueue<TapRequest>();
        var responseSeen = new ConcurrentDictionary<(int, ulong), int>();
        using var h = new RuntimeHarness(rt =>
        {
            rt.RegisterRequestHook("thief", Hook.Request(r =>
            {
                bool steal = steals[(int)(r.Id % (ulong)steals.Length)];
                if (!steal) { r.Status = BlkifStatus.Okay; return HookResult.Respond; }
                stolen.Enqueue(r);
                return HookResult.Stolen;
            }));
            rt.RegisterResponseHook("count", Hook.Response(r => responseSeen.AddOrUpdate((r.Session.Id, r.Id), 1, (_, n) => n + 1)));
        });
        var sessions = Enumerable.Range(0, sessionCount).Select(i => h.Attach($"s{i}", 1000)).ToArray();
        var results = new ConcurrentDictionary<(int, ulong), int>();
        var pending = new List<Task>();
        for (int i = 0; i < steals.Length; i++)
        {
            var s = sessions[i % sessionCount];
            ulong id = (ulong)i;
            var tcs = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            s.Submit(new BufferRequest
            {
                Operation = BlkifOperation.FlushDiskCache, Sector = 0, UserToken = id,
                Completed = b => { results.AddOrUpdate((s.Id, b.UserToken), 1, (_, n) => n + 1); tcs.TrySetResult(); },
            });
            pending.Add(tcs.Task);
        }
        // Inject from several threads, in a shuffled order.
        int expectedStolen = steals.Count(x => x);
        var deadline = DateTime.UtcNow + Waits.Deadline;
        var all = new List<TapRequest>();
        while (all.Count < expectedStolen && DateTime.UtcNow < deadline)
        {
            while (stolen.TryDequeue(out var r)) all.Add(r);
            Thread.Yield();
        }
        var rng = new Random(seed);
        var shuffled = all.OrderBy(_ => rng.Next()).ToArray();
        Parallel.ForEach(shuffled, new ParallelOptions { MaxDegreeOfParallelism = 3 }, r =>
        {
            if (!r.Runtime.InjectResponse(r, BlkifStatus.Okay)) throw new InvalidOperationException("inject refused");
        });
        if (!Task.WaitAll(pending.ToArray(), Waits.Deadline)) return false;
        bool ok = results.Count == steals.Length && results.Values.All(n => n == 1)
            && responseSeen.Count == steals.Length && responseSeen.Values.All(n => n == 1);
        // Each session saw exactly its own ids.
        for (int i = 0; i < steals.Length; i++) ok &= results.ContainsKey((sessions[i % sessionCount].Id, (ulong)i));
        return ok;
    }

    [Test]
    public async Task InjectResponse_Twice_SecondIsRefused()
    {
        var stolen = new TaskCompletionSource<TapRequest>(TaskCreationOptions.RunContinuationsAsynchronously);
        using var h = new RuntimeHarness(rt => rt.RegisterRequestHook("thief", Hook.Request(r => { stolen.SetResult(r); return HookResult.Stolen; })));
        var s = h.Attach("s", 10);
        var answer = h.SubmitAsync(s, BlkifOperation.FlushDiskCache, 0, 0, 0, 1);
        var r = await stolen.Task;
        Assert.That(h.Runtime.InjectResponse(r, BlkifStatus.Error), Is.True);
        Assert.That(h.Runtime.InjectResponse(r, BlkifStatus.Okay), Is.False);
        Assert.That(await answer, Is.EqualTo(BlkifStatus.Error));
    }

    [Test]
    public async Task Resume_StolenRequest_ContinuesWithNextHook()
    {
        var stolen = new TaskCompletionSource<TapRequest>(TaskCreationOptions.RunContinuationsAsynchronously);
        int secondCalls = 0;
        using var h = new RuntimeHarness(rt =>
        {
            rt.RegisterRequestHook("delay", Hook.Request(r => { stolen.TrySetResult(r); return HookResult.Stolen; }));
            rt.RegisterRequestHook("term", Hook.Request(r => { secondCalls++; r.Status = BlkifStatus.Okay; return HookResult.Respond; }));
        });
        var s = h.Attach("s", 10);
        var answer = h.SubmitAsync(s, BlkifOperation.FlushDiskCache, 0, 0, 0, 1);
        var r = await stolen.Task.WaitAsync(Waits.Deadline);
        h.OnLoop(() => { }); // the loop has run everything it had: a request not stolen would be answered by now
        Assert.That(answer.IsCompleted, Is.False);
        await Task.Run(() => Assert.That(h.Runtime.Resume(r), Is.True));
        Assert.That(await answer, Is.EqualTo(BlkifStatus.Okay));
        Assert.That(secondCalls, Is.EqualTo(1));
    }

    [Test]
    public async Task InjectResponse_BeforeStealingHookReturns_ResponseDelivered()
    {
        using var h = new RuntimeHarness(rt => rt.RegisterRequestHook("quick", Hook.Request(r =>
        {
            // Another thread answers before this hook has even returned Stolen.
            Task.Run(() => r.Runtime.InjectResponse(r, BlkifStatus.NotSupported)).Wait();
            return HookResult.Stolen;
        })));
        var s = h.Attach("s", 10);
        var answer = h.SubmitAsync(s, BlkifOperation.FlushDiskCache, 0, 0, 0, 1);
        Assert.That(await answer.WaitAsync(Waits.Deadline), Is.EqualTo(BlkifStatus.NotSupported));
    }

    [Test]
    public async Task Resume_BeforeStealingHookReturns_ContinuesDownTheChain()
    {
        int terminatorCalls = 0;
        using var h = new RuntimeHarness(rt =>
        {
            rt.RegisterRequestHook("quick", Hook.Request(r =>
            {
                Task.Run(() => r.Runtime.Resume(r)).Wait();
                return HookResult.Stolen;
            }));
            rt.RegisterRequestHook("term", Hook.Request(r => { terminatorCalls++; r.Status = BlkifStatus.Okay; return HookResult.Respond; }));
        });
        var s = h.Attach("s", 10);
        Assert.That(await h.SubmitAsync(s, BlkifOperation.FlushDiskCache, 0, 0, 0, 1).WaitAsync(Waits.Deadline), Is.EqualTo(BlkifStatus.Okay));
        Assert.That(terminatorCalls, Is.EqualTo(1));
    }

    [Test]
    public async Task InjectResponse_HookReturnsRespondAfterInjecting_InjectionIgnoredAndReported()
    {
        using var h = new RuntimeHarness(rt => rt.RegisterRequestHook("confused", Hook.Request(r =>
        {
            r.Runtime.InjectResponse(r, BlkifStatus.Error);
            r.Status = BlkifStatus.Okay;
            return HookResult.Respond;
        })));
        var s = h.Attach("s", 10);
        Assert.That(await h.SubmitAsync(s, BlkifOperation.FlushDiskCache, 0, 0, 0, 1).WaitAsync(Waits.Deadline), Is.EqualTo(BlkifStatus.Okay));
        Assert.That(h.Diagnostics.Any(d => d.Contains("not Stolen")), Is.True);
    }

    private sealed class DeviceBackend(IBlockDevice device) : ITapBackend
    {
        public void Submit(TapRequest request) => request.Runtime.InjectResponse(request, BlockDeviceHook.Serve(device, request));
    }
}
