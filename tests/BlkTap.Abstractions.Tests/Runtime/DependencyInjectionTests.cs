using Microsoft.Extensions.DependencyInjection;
using BlkTap.Testing;
using NUnit.Framework;

namespace BlkTap.Abstractions.Tests.Runtime;

public class DependencyInjectionTests
{
    public sealed class Counter { public int Calls; }

    public sealed class CountingHook(Counter counter) : IRequestHook
    {
        public HookResult OnRequest(TapRequest request) { counter.Calls++; request.Status = BlkifStatus.Okay; return HookResult.Respond; }
    }

    [Test]
    public async Task AddBlkTap_HookByType_ResolvedFromContainerAndServesRequests()
    {
        var services = new ServiceCollection();
        services.AddSingleton<Counter>();
        services.AddSingleton<CountingHook>();
        services.AddBlkTap(b => b.AddRequestHook<CountingHook>("count"));
        using var sp = services.BuildServiceProvider();
        var runtime = sp.GetRequiredService<TapRuntime>();
        Assert.That(runtime.RequestHookNames, Is.EqualTo(new[] { "count" }));
        using var cts = new CancellationTokenSource();
        var loop = runtime.RunAsync(cts.Token);
        var session = new BufferSession("s");
        var attached = new TaskCompletionSource();
        runtime.Post(() => { runtime.AttachSession(session); session.Sectors = 8; runtime.ConnectSession(session); attached.SetResult(); });
        await attached.Task;
        var done = new TaskCompletionSource<BlkifStatus>();
        session.Submit(new BufferRequest { Operation = BlkifOperation.FlushDiskCache, Completed = b => done.SetResult(b.Status) });
        Assert.That(await done.Task.WaitAsync(Waits.Deadline), Is.EqualTo(BlkifStatus.Okay));
        Assert.That(sp.GetRequiredService<Counter>().Calls, Is.EqualTo(1));
        cts.Cancel();
        await loop;
    }

    [Test]
    public void AddBlkTap_CalledTwice_FirstRuntimeWins()
    {
        var services = new ServiceCollection();
        services.AddBlkTap(b => b.AddRequestHook("a", Hook.Request(_ => HookResult.Pass)));
        services.AddBlkTap(b => b.AddRequestHook("b", Hook.Request(_ => HookResult.Pass)));
        using var sp = services.BuildServiceProvider();
        Assert.That(sp.GetRequiredService<TapRuntime>().RequestHookNames, Is.EqualTo(new[] { "a" }));
    }

    [Test]
    public void TapRuntimeBuilder_WithoutContainer_BuildsChainInOrder()
    {
        var runtime = new TapRuntimeBuilder()
            .AddRequestHook("first", Hook.Request(_ => HookResult.Pass))
            .AddRequestHook("second", Hook.Request(_ => HookResult.Respond))
            .Build();
        Assert.That(runtime.RequestHookNames, Is.EqualTo(new[] { "first", "second" }));
    }
}
