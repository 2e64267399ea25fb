using BlkTap.Chains;
using BlkTap.Emulator;
using BlkTap.Emulator.Hosting;
using BlkTap.Examples;
using BlkTap.Linux;
using BlkTap.Testing;
using BlkTap.Testing.Shmring;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using NUnit.Framework;

namespace BlkTap.Cli.Tests.Hosting;

/// <summary><c>shm serve</c>'s composition under the generic host: the shmring server as a hosted service over the container's chain.</summary>
[TestFixture]
[Parallelizable(ParallelScope.None)]
public sealed class ShmringServeServiceTests
{
    private static IHost Compose(string dir, bool keepServing, List<ShmringSessionResult> sessions)
    {
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Services.AddTapRegistry(ExampleTaps.CreateRegistry());
        builder.Services.AddSingleton(new TapContext { Output = TextWriter.Null });
        builder.Services.AddBlkTap(new[] { TapSpec.Parse("mem:size=4M") }, b => b.ConfigureOptions((o, _) => o.Waiter = new EpollLoopWaiter()));
        builder.Services.AddShmringServe(new ShmringServeOptions
        {
            Directory = dir,
            KeepServing = keepServing,
            SessionEnded = r => { lock (sessions) sessions.Add(r); },
        });
        return builder.Build();
    }

    [Test]
    public async Task AddShmringServe_OneFrontendServed_ServiceStopsTheHostItself()
    {
        var dir = ShmHarness.NewDir();
        ShmHarness.Frontend(BlkifProtocol.X86_64);
        var sessions = new List<ShmringSessionResult>();
        var host = Compose(dir, keepServing: false, sessions);
        await Waits.For(host.StartAsync(), "the host to start");
        var run = host.WaitForShutdownAsync();

        var c = await Task.Run(() => ShmHarness.RunFrontend(BlkifProtocol.X86_64, dir, "workload", "200", "5"));
        Assert.That(c.ExitCode, Is.EqualTo(0), c.StdOut + c.StdErr);
        await Waits.For(run, "the host to stop after its one session");
        var service = host.Services.GetRequiredService<ShmringServeService>();
        await ((IAsyncDisposable)host).DisposeAsync();

        Assert.That(service.LastSession?.End, Is.EqualTo(ShmringSessionEnd.FrontendClosed));
        Assert.That(service.StoppedByHost, Is.False, "the service ended the host, no stop was asked for");
        Assert.That(sessions, Has.Count.EqualTo(1));
        Assert.That(sessions[0].Statistics!.Errors, Is.EqualTo(0));
        Assert.That(File.Exists(Path.Combine(dir, ShmringProtocol.EventChannelFileName)), Is.False, "the socket is removed");
    }

    [Test]
    public async Task AddShmringServe_KeepServingCancelledWhileWaiting_StopsCleanlyAndRemovesTheSocket()
    {
        var dir = ShmHarness.NewDir();
        var host = Compose(dir, keepServing: true, new List<ShmringSessionResult>());
        using var stop = new CancellationTokenSource();
        await Waits.For(host.StartAsync(), "the host to start");
        var service = host.Services.GetRequiredService<ShmringServeService>();
        Assert.That(File.Exists(service.SocketPath), Is.True, "listening once started");

        stop.Cancel();
        await Waits.For(host.WaitForShutdownAsync(stop.Token), "the host to stop");
        await ((IAsyncDisposable)host).DisposeAsync();

        Assert.That(service.StoppedByHost, Is.True);
        Assert.That(service.LastSession, Is.Null, "no frontend came");
        Assert.That(File.Exists(service.SocketPath), Is.False, "the socket is removed at the stop");
    }
}
