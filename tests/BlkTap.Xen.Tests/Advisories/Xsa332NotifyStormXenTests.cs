using System.Diagnostics;
using BlkTap.Testing;
using BlkTap.Xen;
using NUnit.Framework;

namespace BlkTap.Xen.Tests.Advisories;

/// <summary>
/// XSA-332 (event storm) on a real dom0: one frontend notifies its real event channel as fast as a thread can
/// (xenevtchn_notify in a loop) while another frontend reads one request at a time. The quiet frontend keeps being
/// served throughout, and the storming session's work is bounded: it wakes at most once per notification Xen
/// delivered (each wake-up finds an empty ring and does nothing else).
/// </summary>
/// <remarks>
/// The emulator's twin (tests/BlkTap.Abstractions.Tests/Advisories/Xsa332NotifyStormTests.cs) holds the quiet
/// guest's p99 within 2x of the quiet case. Here the bound is looser, <see cref="P99Bound"/>x: under the lab's TCG
/// dom0's two vCPUs are threads of a qemu on a shared 2-core host, and the storm thread, the evtchn poll threads, the
/// tap's loop and the reader all run on them, so a p99 over a few hundred reads moves by a factor when qemu or the host
/// stalls a vCPU, storm or not. As in the emulator, the quiet case is the same storm on a second channel of the same
/// frontend whose dom0 end does nothing (its poll thread wakes for each notification too), rounds alternate, and the
/// medians of the rounds' p99s are compared: ratios only, never absolute times.
/// </remarks>
[TestFixture]
[Category("RequiresXen")]
public sealed class Xsa332NotifyStormXenTests
{
    private const int Rounds = 3, OperationsPerPhase = 100;
    private const double P99Bound = 4;

    [SetUp]
    public void RequireXen() => XenAdvisoryRig.RequireXen();

    [Test]
    public void RingSession_Xsa332_FrontendNotifiesAsFastAsItCanOnRealXen_QuietServedAndStormWorkBounded()
    {
        using var rig = XenAdvisoryRig.Start();
        var storm = rig.Connect("xvdw");
        var quiet = rig.Connect("xvdx");
        var session = rig.SessionOf(storm);
        using var decoy = XenEventChannel.AllocateUnbound(0);
        using var sink = XenEventChannel.BindInterdomain(0, decoy.LocalPort);
        sink.SetHandler(static () => { });
        var page = quiet.Grant(1, writable: true);
        for (int i = 0; i < 50; i++) Read(quiet, page, i); // warm up

        long wakeupsBefore = Waits.OnLoop(rig.Runtime, () => session.Wakeups);
        long notifications = 0;
        var quietP99 = new List<double>();
        var stormP99 = new List<double>();
        for (int round = 0; round < Rounds; round++)
        {
            quietP99.Add(Phase(decoy, quiet, page, out _));
            stormP99.Add(Phase(storm.Channel!, quiet, page, out long sent));
            notifications += sent;
        }
        Waits.OnLoop(rig.Runtime, () => 0);
        long wakeups = Waits.OnLoop(rig.Runtime, () => session.Wakeups) - wakeupsBefore;
        long deferrals = Waits.OnLoop(rig.Runtime, () => session.EventDeferrals);

        double quietMedian = Median(quietP99), stormMedian = Median(stormP99);
        TestContext.Out.WriteLine($"p99 quiet {string.Join(", ", quietP99.Select(v => v.ToString("F0")))} µs; storm {string.Join(", ", stormP99.Select(v => v.ToString("F0")))} µs; ratio {stormMedian / quietMedian:F2}; {notifications} notifications, {wakeups} wake-ups");
        TestContext.Out.WriteLine(FormattableString.Invariant($"XSA-332 figure: p99_ratio={stormMedian / quietMedian:F2}"));
        TestContext.Out.WriteLine(FormattableString.Invariant($"XSA-332 figure: notifications={notifications}"));
        TestContext.Out.WriteLine(FormattableString.Invariant($"XSA-332 figure: wakeups={wakeups}"));
        TestContext.Out.WriteLine(FormattableString.Invariant($"XSA-332 figure: deferrals={deferrals}"));
        Assert.That(notifications, Is.GreaterThan(Rounds * OperationsPerPhase), "the storm did storm");
        Assert.That(wakeups, Is.InRange(1, notifications), "the storming session woke more often than it was notified");
        Assert.That(deferrals, Is.GreaterThan(0), "the storming session never held its notifications back (lateeoi backoff)");
        Assert.That(stormMedian, Is.LessThanOrEqualTo(P99Bound * quietMedian), $"the quiet frontend's p99 went from {quietMedian:F0} µs to {stormMedian:F0} µs under the storm");
        Assert.That(Waits.OnLoop(rig.Runtime, () => session.IsOpen), Is.True);
        Assert.That(rig.Crashes, Is.Empty);
    }

    private static void Read(XenRawFrontend quiet, IGrantedPages page, int i)
    {
        var response = quiet.Submit(XenAdvisoryRig.Rw(BlkifOperation.Read, (ulong)(i % 64) * 8, new BlkifSegment(page.Reference(0), 0, 7)), "a quiet read");
        Assert.That(response.Status, Is.EqualTo(BlkifStatus.Okay));
    }

    /// <summary>One phase: a thread notifying <paramref name="channel"/> as fast as it can while the quiet frontend reads.</summary>
    private static double Phase(XenEventChannel channel, XenRawFrontend quiet, IGrantedPages page, out long sent)
    {
        int stop = 0;
        long count = 0;
        var spinner = new Thread(() =>
        {
            while (Volatile.Read(ref stop) == 0) { channel.Notify(); count++; }
        }) { IsBackground = true, Name = "storm" };
        spinner.Start();
        var latencies = new double[OperationsPerPhase];
        try
        {
            for (int i = 0; i < latencies.Length; i++)
            {
                long t0 = Stopwatch.GetTimestamp();
                Read(quiet, page, i);
                latencies[i] = Stopwatch.GetElapsedTime(t0).TotalMicroseconds;
            }
        }
        finally
        {
            Volatile.Write(ref stop, 1);
            spinner.Join();
        }
        sent = count;
        Array.Sort(latencies);
        return latencies[(int)Math.Ceiling(latencies.Length * 0.99) - 1];
    }

    private static double Median(List<double> values)
    {
        var sorted = values.OrderBy(v => v).ToArray();
        return sorted[sorted.Length / 2];
    }
}
