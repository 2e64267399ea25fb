using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using BlkTap.Metrics;
using BlkTap.Testing.Rigs;
using NUnit.Framework;

namespace BlkTap.Abstractions.Tests.Runtime;

/// <summary>
/// The <see cref="TapMetrics"/> instruments, read with a <see cref="MeterListener"/> (what dotnet-counters and the
/// Prometheus exporter use): what a runtime records per tap and session, and that recording allocates nothing.
/// </summary>
public class TapMetricsTests
{
    /// <summary>Sums of each instrument's measurements whose tap tag is <paramref name="tap"/>, keyed "instrument" and "instrument/operation".</summary>
    private static MeterListener Listen(string tap, ConcurrentDictionary<string, double> sums)
    {
        var listener = new MeterListener
        {
            InstrumentPublished = (instrument, l) => { if (instrument.Meter.Name == TapMetrics.MeterName) l.EnableMeasurementEvents(instrument); },
        };
        void Add(Instrument instrument, double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            string? t = null, op = null;
            foreach (var tag in tags)
            {
                if (tag.Key == TapMetrics.TapTag) t = tag.Value as string;
                if (tag.Key == TapMetrics.OperationTag) op = tag.Value as string;
            }
            if (t != tap) return;
            Sum(sums, instrument.Name, value);
            if (op != null) Sum(sums, instrument.Name + "/" + op, value);
            if (instrument is Histogram<double>) Sum(sums, instrument.Name + "#count", 1);
        }
        listener.SetMeasurementEventCallback<long>((i, v, tags, _) => Add(i, v, tags));
        listener.SetMeasurementEventCallback<double>((i, v, tags, _) => Add(i, v, tags));
        listener.Start();
        return listener;
    }

    // No lambda capturing the value: its closure would be allocated on every measurement, even one filtered out.
    private static void Sum(ConcurrentDictionary<string, double> sums, string key, double value) =>
        sums.AddOrUpdate(key, static (_, a) => a, static (_, v, a) => v + a, value);

    [Test]
    public async Task Requests_ReadsWritesErrorAndReject_CountedPerOperationWithBytesAndLatency()
    {
        var sums = new ConcurrentDictionary<string, double>();
        using var listener = Listen("metrics-a", sums);
        using var h = new RuntimeHarness(rt => rt.RegisterRequestHook("disk", Hook.Request(r =>
        {
            r.Status = r.Sector == 50 ? BlkifStatus.Error : BlkifStatus.Okay;
            return HookResult.Respond;
        })), name: "metrics-a");
        var s = h.Attach("s1", 100);
        var buffer = h.Alloc(4096);
        for (int i = 0; i < 3; i++) Assert.That(await h.SubmitAsync(s, BlkifOperation.Read, 0, buffer, 4096, (ulong)i), Is.EqualTo(BlkifStatus.Okay));
        for (int i = 0; i < 2; i++) Assert.That(await h.SubmitAsync(s, BlkifOperation.Write, 8, buffer, 512, (ulong)(10 + i)), Is.EqualTo(BlkifStatus.Okay));
        Assert.That(await h.SubmitAsync(s, BlkifOperation.Write, 50, buffer, 512, 20), Is.EqualTo(BlkifStatus.Error));
        Assert.That(await h.SubmitAsync(s, BlkifOperation.Read, 1000, buffer, 512, 21), Is.Not.EqualTo(BlkifStatus.Okay), "past the end: rejected");

        Assert.That(sums.GetValueOrDefault("blktap.requests/read"), Is.EqualTo(4));
        Assert.That(sums.GetValueOrDefault("blktap.requests/write"), Is.EqualTo(3));
        Assert.That(sums.GetValueOrDefault("blktap.errors/write"), Is.EqualTo(1));
        Assert.That(sums.GetValueOrDefault("blktap.errors/read"), Is.EqualTo(1), "the rejected read is answered with an error");
        Assert.That(sums.GetValueOrDefault("blktap.rejected"), Is.EqualTo(1));
        Assert.That(sums.GetValueOrDefault("blktap.read"), Is.EqualTo(3 * 4096));
        Assert.That(sums.GetValueOrDefault("blktap.written"), Is.EqualTo(2 * 512));
        Assert.That(sums.GetValueOrDefault("blktap.request.duration#count"), Is.EqualTo(7));
        Assert.That(sums.GetValueOrDefault("blktap.sessions"), Is.EqualTo(1));
        var st = s.Statistics;
        Assert.That((st.Requests, st.Errors, st.Rejected, st.BytesRead, st.BytesWritten), Is.EqualTo((7L, 2L, 1L, 3L * 4096, 2L * 512)),
            "the counters agree with the session's statistics");

        h.OnLoop(() => h.Runtime.CloseSession(s));
        Assert.That(sums.GetValueOrDefault("blktap.sessions"), Is.EqualTo(0), "a closed session leaves the open count");
    }

    [Test]
    public void Completed_WithAListener_AllocatesNothing()
    {
        var sums = new ConcurrentDictionary<string, double>();
        using var listener = Listen("metrics-alloc", sums);
        using var runtime = new TapRuntime(new TapRuntimeOptions { Name = "metrics-alloc" });
        var session = new BufferSession("s1");
        runtime.AttachSession(session);
        var metrics = new SessionMetrics("metrics-alloc-other", "s1"); // tags the listener above ignores after matching
        var request = runtime.RentRequest(session, 1, BlkifOperation.Read, 0);
        // Unoptimised (tier-0) code boxes where optimised code does not: measure batches until the methods are
        // optimised, within a deadline; a steady state that allocates never reaches 0.
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        long allocated;
        do
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            for (int i = 0; i < 10_000; i++) { metrics.Completed(request, true); metrics.Completed(request, false); metrics.Rejected(); }
            allocated = GC.GetAllocatedBytesForCurrentThread() - before;
            if (allocated != 0) Thread.Sleep(50); // the background compiler's turn
        }
        while (allocated != 0 && DateTime.UtcNow < deadline);
        Assert.That(allocated, Is.EqualTo(0), "bytes allocated by 30000 recordings with a listener enabled, once optimised");
        runtime.ReturnUnsubmitted(request);
    }
}
