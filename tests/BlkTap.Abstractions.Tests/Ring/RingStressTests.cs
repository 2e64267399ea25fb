using System.Diagnostics;
using NUnit.Framework;
using BlkTap.Testing.Generators;

namespace BlkTap.Abstractions.Tests.Ring;

/// <summary>
/// A frontend thread and a backend thread over one native ring, each sleeping on a semaphore (the
/// event channel) only after its final check found nothing, and woken only when the other side's
/// push asked for a notification. Every request must be answered exactly once, in order. A missed
/// notification shows up as a consumer that never wakes (the wait times out).
/// </summary>
[TestFixture]
public sealed class RingStressTests
{
    private const int Requests = 100_000;
    private static readonly TimeSpan WakeTimeout = TimeSpan.FromSeconds(60); // a missed notification never wakes; a busy machine may delay a real one by seconds

    private static IEnumerable<TestCaseData> Rings()
    {
        for (int order = 0; order <= BlkifConstants.MaxRingPageOrder; order++)
            yield return new TestCaseData(BlkifProtocol.X86_64, order);
        yield return new TestCaseData(BlkifProtocol.X86_32, 0);
        yield return new TestCaseData(BlkifProtocol.X86_32, 3);
    }

    [TestCaseSource(nameof(Rings))]
    [CancelAfter(30_000)]
    public void TwoThreads_SleepingOnlyOnFinalCheckZero_EveryRequestAnsweredExactlyOnce(BlkifProtocol protocol, int order)
    {
        int bytes = SharedRingLayout.BytesForOrder(order);
        var layout = BlkifLayout.For(protocol);
        uint start = uint.MaxValue - 1000; // the indices wrap early in the run
        using var memory = new NativeRingMemory(bytes);
        memory.InitialiseAt(start);
        var front = new FrontRing(memory.Address, bytes, layout, start);
        var back = new BackRing(memory.Address, bytes, layout, start);
        using var toBackend = new SemaphoreSlim(0);
        using var toFrontend = new SemaphoreSlim(0);
        var errors = new System.Collections.Concurrent.ConcurrentQueue<string>();
        var answered = new int[Requests];
        int frontendSleeps = 0, backendSleeps = 0;

        var backend = new Thread(() =>
        {
            try
            {
                ulong due = 0;
                while (due < Requests && errors.IsEmpty)
                {
                    long n = back.UnconsumedRequests();
                    if (n == 0)
                    {
                        n = back.FinalCheckForRequests();
                        if (n == 0)
                        {
                            backendSleeps++;
                            if (!toBackend.Wait(WakeTimeout)) { errors.Enqueue($"backend never woken with {due} requests answered: a notification was missed"); return; }
                            continue;
                        }
                    }
                    if (n < 0) { errors.Enqueue("backend saw a protocol error"); return; }
                    for (long i = 0; i < n; i++)
                    {
                        back.TakeRequest(out var r);
                        if (r.Id != due || r.Sector != r.Id * 8 || r.Segments[0].GrantRef != (uint)r.Id)
                            errors.Enqueue($"request {due} due, got {BlkTap.Testing.Generators.BlkifRequestText.Describe(r)}");
                        due++;
                        back.EnqueueResponse(new BlkifResponse(r.Id, r.Operation, BlkifStatus.Okay));
                    }
                    if (back.PushResponsesAndCheckNotify()) toFrontend.Release();
                }
            }
            catch (Exception ex) { errors.Enqueue("backend: " + ex); }
        }) { IsBackground = true, Name = "ring backend" };

        var frontend = new Thread(() =>
        {
            try
            {
                int sent = 0, received = 0;
                while (received < Requests && errors.IsEmpty)
                {
                    bool produced = false;
                    while (sent < Requests && !front.IsFull)
                    {
                        var r = new BlkifRequest { Operation = (sent & 1) == 0 ? BlkifOperation.Read : BlkifOperation.Write, SegmentCount = 1, Id = (ulong)sent, Sector = (ulong)sent * 8 };
                        r.Segments[0] = new BlkifSegment((uint)sent, 0, 7);
                        front.EnqueueRequest(r);
                        sent++;
                        produced = true;
                    }
                    if (produced && front.PushRequestsAndCheckNotify()) toBackend.Release();

                    long n = front.UnconsumedResponses();
                    if (n == 0)
                    {
                        if (sent < Requests && !front.IsFull) continue; // more to send: not idle
                        n = front.FinalCheckForResponses();
                        if (n == 0)
                        {
                            frontendSleeps++;
                            if (!toFrontend.Wait(WakeTimeout)) { errors.Enqueue($"frontend never woken with {received} responses: a notification was missed"); return; }
                            continue;
                        }
                    }
                    if (n < 0) { errors.Enqueue("frontend saw a protocol error"); return; }
                    for (long i = 0; i < n; i++)
                    {
                        var rsp = front.TakeResponse();
                        if (rsp.Id >= Requests) { errors.Enqueue($"response for unknown id {rsp.Id}"); return; }
                        answered[rsp.Id]++;
                        if (rsp.Id != (ulong)received) errors.Enqueue($"response {rsp.Id} where {received} was due");
                        received++;
                    }
                }
            }
            catch (Exception ex) { errors.Enqueue("frontend: " + ex); }
        }) { IsBackground = true, Name = "ring frontend" };

        var clock = Stopwatch.StartNew();
        backend.Start();
        frontend.Start();
        Assert.That(frontend.Join(TimeSpan.FromSeconds(120)) && backend.Join(TimeSpan.FromSeconds(60)), Is.True, "the ring threads did not finish");
        TestContext.Out.WriteLine($"{Requests} requests in {clock.ElapsedMilliseconds} ms; frontend slept {frontendSleeps}x, backend slept {backendSleeps}x");

        Assert.That(errors, Is.Empty);
        Assert.That(answered, Is.All.EqualTo(1), "every request answered exactly once");
        Assert.That(back.UnconsumedRequests(), Is.Zero);
        Assert.That(front.UnconsumedResponses(), Is.Zero);
    }
}
