using BlkTap.Emulator;
using NUnit.Framework;

namespace BlkTap.Emulator.Tests;

public class SchedulerTests
{
    /// <summary>A small system of posts, watches and event channels whose interleaving depends on the scheduler.</summary>
    private static List<string> Trace(int seed)
    {
        using var emu = XenEmulator.CreateDeterministic(seed);
        var trace = new List<string>();
        var guest = emu.CreateDomain("guest");
        var (port, fe) = guest.EventChannels.AllocUnbound(0);
        var be = emu.EventChannelFactoryFor(0).BindInterdomain(guest.Id, port, out _)!;
        be.SetHandler(() => trace.Add("evt"));
        using var w = emu.Store.Watch("/w", p => trace.Add("watch " + p));
        for (int i = 0; i < 8; i++)
        {
            int n = i;
            emu.Post(() =>
            {
                trace.Add("work " + n);
                emu.Store.Write("/w/" + n, "x");
                fe.Notify();
            });
        }
        emu.RunUntilIdle();
        return trace;
    }

    [Test]
    public void Deterministic_SameSeed_SameOrderOfEvents()
    {
        var first = Trace(42);
        var second = Trace(42);
        Assert.That(first, Has.Count.GreaterThan(10));
        Assert.That(second, Is.EqualTo(first));
    }

    [Test]
    public void Deterministic_DifferentSeeds_DifferentOrders()
    {
        var orders = new HashSet<string>();
        for (int seed = 0; seed < 10; seed++) orders.Add(string.Join(",", Trace(seed)));
        Assert.That(orders.Count, Is.GreaterThan(1));
    }

    [Test]
    public void Threaded_Posts_RunInFifoOrderOnOneOtherThread()
    {
        using var emu = new XenEmulator();
        var seen = new List<int>();
        var threads = new HashSet<int>();
        for (int i = 0; i < 100; i++)
        {
            int n = i;
            emu.Post(() => { seen.Add(n); threads.Add(Environment.CurrentManagedThreadId); });
        }
        emu.RunUntilIdle();
        Assert.That(seen, Is.EqualTo(Enumerable.Range(0, 100)));
        Assert.That(threads, Has.Count.EqualTo(1));
        Assert.That(threads, Does.Not.Contain(Environment.CurrentManagedThreadId));
    }

    [Test]
    public void Spawn_AsyncWork_ResumesOnTheDeterministicScheduler()
    {
        using var emu = XenEmulator.CreateDeterministic(9);
        var onScheduler = new List<bool>();
        var task = emu.Spawn(async () =>
        {
            for (int i = 0; i < 3; i++)
            {
                onScheduler.Add(emu.IsSchedulerThread);
                await Task.Yield();
            }
            onScheduler.Add(emu.IsSchedulerThread);
        });
        Assert.That(emu.RunUntil(() => task.IsCompleted), Is.True);
        Assert.That(onScheduler, Is.EqualTo(new[] { true, true, true, true }));
    }

    [Test]
    public void Step_CallbackThrows_ReportsAnEmulatorFaultAndKeepsRunning()
    {
        using var emu = XenEmulator.CreateDeterministic(1);
        emu.Post(() => throw new InvalidOperationException("boom"));
        var e = Assert.Throws<EmulatorFaultException>(() => emu.RunUntilIdle());
        Assert.That(e!.InnerException!.Message, Is.EqualTo("boom"));
        bool ran = false;
        emu.Post(() => ran = true);
        emu.RunUntilIdle();
        Assert.That(ran, Is.True);
        Assert.That(emu.Faults, Has.Count.EqualTo(1));
    }

    [Test]
    public void Step_ThreadedMode_Throws()
    {
        using var emu = new XenEmulator();
        Assert.Throws<InvalidOperationException>(() => emu.Step());
    }
}
