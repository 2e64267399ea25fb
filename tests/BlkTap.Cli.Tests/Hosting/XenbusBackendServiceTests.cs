using BlkTap.Chains;
using BlkTap.Cli.Commands;
using BlkTap.Emulator;
using BlkTap.Emulator.Hosting;
using BlkTap.Examples;
using BlkTap.Hosting;
using BlkTap.Testing;
using BlkTap.Xen;
using BlkTap.Xen.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using NUnit.Framework;

namespace BlkTap.Cli.Tests.Hosting;

/// <summary>
/// <c>xen serve</c>'s composition (<see cref="XenServeHost.Compose"/>: registry, chain, runtime, the xenbus backend
/// service) with the platform swapped by registration: the emulator's dom0 instead of the real one.
/// </summary>
[TestFixture]
public sealed class XenbusBackendServiceTests
{
    private static IHost ComposeXenServe(XenEmulator emulator, params string[] taps)
    {
        var builder = XenServeHost.CreateBuilder();
        builder.Logging.ClearProviders();
        XenServeHost.Compose(builder.Services, taps.Select(TapSpec.Parse).ToList(), ExampleTaps.CreateRegistry(),
            new XenbusBackendOptions { DeviceType = "vbd3" }, TextWriter.Null);
        builder.Services.AddEmulatedXenPlatform(emulator);
        return builder.Build();
    }

    [Test]
    public async Task XenServeComposition_EmulatedPlatformRegistered_GuestWritesThenReadsBackThroughItsFrontend()
    {
        using var emulator = new XenEmulator();
        var host = ComposeXenServe(emulator, "dump:quiet=true", "mem:size=4M");
        try
        {
            await host.StartAsync().WaitAsync(Waits.Deadline);
            var service = host.Services.GetRequiredService<XenbusBackendService>();
            Assert.That(service.Backend!.Root, Is.EqualTo("/local/domain/0/backend/vbd3"));

            var guest = emulator.CreateDomain("guest");
            var nodes = XenVbdToolstack.WriteAttach(emulator.Store, new XenVbdAttachment(guest.Id, "xvda", "/images/guest.img") { DeviceType = "vbd3" });
            using var front = new BlkFront(emulator, guest, nodes.DeviceNumber);
            await Waits.For(front.ConnectAsync(), "the guest's disk to connect through the composed backend");
            var data = new byte[8192];
            new Random(11).NextBytes(data);
            Assert.That(await Waits.For(front.WriteAsync(24, data), "the write"), Is.EqualTo(BlkifStatus.Okay));
            var back = new byte[8192];
            Assert.That(await Waits.For(front.ReadAsync(24, back), "the read"), Is.EqualTo(BlkifStatus.Okay));
            Assert.That(back, Is.EqualTo(data), "the guest reads back what it wrote, through the chain of the container");
            Assert.That(service.Runtime.RequestHookNames, Is.EqualTo(new[] { "dump", "mem" }), "the runtime holds the chain from the specs");

            await host.StopAsync().WaitAsync(Waits.Deadline);
            Waits.ForStore(emulator.Store, () => emulator.Store.Read($"{nodes.BackendPath}/state") == "6", "the backend to be Closed after the stop", nodes.BackendPath);
        }
        finally
        {
            await ((IAsyncDisposable)host).DisposeAsync();
        }
    }

    [Test]
    public void AddXenPlatform_EmulatedPlatformRegisteredFirst_ContainerHandsOutTheEmulatorsObjectsWithoutOpeningXen()
    {
        using var emulator = new XenEmulator();
        var services = new ServiceCollection();
        services.AddEmulatedXenPlatform(emulator);
        services.AddXenPlatform();
        using var sp = services.BuildServiceProvider();

        Assert.Multiple(() =>
        {
            Assert.That(sp.GetRequiredService<IXenStore>(), Is.SameAs(emulator.Store));
            Assert.That(sp.GetRequiredService<IGrantMapper>().GetType().Assembly, Is.EqualTo(typeof(XenEmulator).Assembly));
            Assert.That(sp.GetRequiredService<IEventChannelFactory>().GetType().Assembly, Is.EqualTo(typeof(XenEmulator).Assembly));
            Assert.That(sp.GetRequiredService<BlockFrontendPlatform>().Store, Is.SameAs(emulator.Store));
        });
    }

    [Test]
    public async Task XenServeComposition_UnknownTapAtStart_StartFailsWithTheChainError()
    {
        using var emulator = new XenEmulator();
        var host = ComposeXenServe(emulator, "nosuchtap");
        try
        {
            var ex = Assert.CatchAsync(() => host.StartAsync().WaitAsync(Waits.Deadline));
            Assert.That(ServeHostBuilder.Unwrap(ex!), Is.InstanceOf<ChainSpecException>().With.Message.Contains("nosuchtap"));
        }
        finally
        {
            await ((IAsyncDisposable)host).DisposeAsync();
        }
    }
}
