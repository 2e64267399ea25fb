using BlkTap.Emulator;
using BlkTap.Testing;
using NUnit.Framework;
using BlkTap.Testing.Generators;

namespace BlkTap.Emulator.Tests.Fuzz;

/// <summary>Generated attach/connect/disconnect orders through the emulator's xenbus backend: what a tap's control hook sees.</summary>
public class ControlScenarioTests
{
    [FsCheck.NUnit.Property(Arbitrary = [typeof(BlkTapArbitraries)], MaxTest = 40)]
    public void ControlHook_AnyConnectAndEndOrder_EachSessionSeesAttachConnectDisconnectOnce(ControlScenario scenario)
    {
        var seen = Run(scenario, out var writesOk);
        for (int g = 0; g < scenario.Guests.Count; g++)
        {
            var plan = scenario.Guests[g];
            Assert.That(seen.TryGetValue(g, out var events), Is.True, $"guest {g}: no control event at all");
            Assert.That(events, Is.EqualTo(new[] { $"Attach {plan.ImageId}", "Connect", "Disconnect" }), $"guest {g} ({plan})");
        }
        Assert.That(writesOk, Is.EqualTo(scenario.Guests.Sum(g => g.Writes)), "every write before the end succeeded");
    }

    /// <summary>Runs the scenario; returns, per guest index, the control events its session saw (in order).</summary>
    private static Dictionary<int, List<string>> Run(ControlScenario scenario, out int writesOk)
    {
        using var emulator = XenEmulator.CreateDeterministic(scenario.GetHashCode());
        var events = new Dictionary<ushort, List<string>>();
        using var runtime = new TapRuntime(new TapRuntimeOptions { Name = "control" });
        runtime.RegisterControlHook("recorder", Hook.Control(e =>
        {
            if (!events.TryGetValue(e.Session.DomainId, out var list)) events[e.Session.DomainId] = list = new();
            list.Add(e.Kind == ControlEventKind.Attach ? $"Attach {e.Session.ImageId}" : e.Kind.ToString());
        }));
        var serve = new BlockDeviceHook(_ => new MemoryBlockDevice(1 << 20));
        runtime.RegisterControlHook("mem", serve);
        runtime.RegisterRequestHook("mem", serve);
        int posted = 0;
        runtime.UseExternalDriver(() =>
        {
            if (Interlocked.Exchange(ref posted, 1) == 0) emulator.Post(() => { Volatile.Write(ref posted, 0); runtime.RunOnce(); });
        });
        var backend = new XenbusBlockBackend(runtime, emulator.Store, emulator.GrantMapperFor(0), emulator.EventChannelFactoryFor(0), new XenbusBackendOptions { BackendDomain = 0 });
        backend.Start();
        var fronts = new BlkFront[scenario.Guests.Count];
        int ok = 0;
        var work = emulator.Spawn(async () =>
        {
            var connecting = new List<Task>();
            foreach (int g in scenario.ConnectOrder)
            {
                var dom = emulator.CreateDomain($"guest{g}");
                XenbusDevices.CreateVbd(emulator.Store, dom.Id, 0, 51712, scenario.Guests[g].ImageId);
                fronts[g] = new BlkFront(emulator, dom, 51712);
                var c = fronts[g].ConnectAsync();
                if (scenario.ConcurrentConnects) connecting.Add(c); else await c;
            }
            await Task.WhenAll(connecting);
            var data = new byte[512];
            for (int g = 0; g < fronts.Length; g++)
                for (int w = 0; w < scenario.Guests[g].Writes; w++)
                    if (await fronts[g].WriteAsync((ulong)w, data) == BlkifStatus.Okay) ok++;
            foreach (int g in scenario.EndOrder)
            {
                switch (scenario.Guests[g].End)
                {
                    case SessionEnd.Disconnect: await fronts[g].DisconnectAsync(); break;
                    case SessionEnd.Destroy: emulator.DestroyDomain(fronts[g].Domain.Id); break;
                }
            }
        });
        Assert.That(emulator.RunUntil(() => work.IsCompleted), Is.True.Or.Property(nameof(Task.IsCompleted)).EqualTo(true), "the scenario went idle before it finished");
        Assert.That(work.IsCompleted, Is.True, "the scenario hung (a connect or disconnect never completed)");
        work.GetAwaiter().GetResult();
        emulator.RunUntilIdle();
        // Tear down what stayed connected: the backend closes its sessions.
        foreach (var f in fronts) if (f.Domain.IsAlive && !(f.IsBroken)) f.Dispose();
        emulator.RunUntilIdle();
        backend.Dispose();
        emulator.RunUntilIdle();
        writesOk = ok;
        var byGuest = new Dictionary<int, List<string>>();
        for (int g = 0; g < fronts.Length; g++)
            if (events.TryGetValue(fronts[g].Domain.Id, out var list)) byGuest[g] = list;
        return byGuest;
    }
}
