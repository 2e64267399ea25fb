using System.Collections.Concurrent;
using BlkTap.Chains;
using BlkTap.Cli.Commands;
using BlkTap.Emulator;
using BlkTap.Examples;
using BlkTap.Testing;
using BlkTap.Xen;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using NUnit.Framework;

namespace BlkTap.Cli.Tests.XenServe;

/// <summary>What the first run on a real dom0 found in <c>xen serve</c>'s host and log hook.</summary>
[TestFixture]
public sealed class XenServeHostTests
{
    [Test]
    public void CreateBuilder_AnyWorkingDirectory_ContentRootIsTheProgramAndNoConfigurationFileIsWatched()
    {
        var builder = XenServeHost.CreateBuilder();

        var fileSources = ((IConfigurationBuilder)builder.Configuration).Sources.OfType<FileConfigurationSource>().ToList();
        Assert.Multiple(() =>
        {
            Assert.That(Path.TrimEndingDirectorySeparator(builder.Environment.ContentRootPath),
                Is.EqualTo(Path.TrimEndingDirectorySeparator(AppContext.BaseDirectory)), "not the working directory (/ under systemd)");
            Assert.That(fileSources, Is.Not.Empty, "the host still reads appsettings.json");
            Assert.That(fileSources.Where(f => f.ReloadOnChange).Select(f => f.Path), Is.Empty,
                "a watched file makes the host watch its content root recursively (8192 inotify watches from /)");
        });
    }

    private sealed class ListLogger : ILogger
    {
        public ConcurrentQueue<string> Lines { get; } = new();
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
        public bool IsEnabled(LogLevel logLevel) => true;
        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            Lines.Enqueue(formatter(state, exception));
    }

    [Test]
    public async Task RegisterChainAndLog_GuestAttachesAnImage_AttachLineCarriesTheImageSize()
    {
        var dir = Directory.CreateTempSubdirectory("xenserve-log");
        try
        {
            var image = Path.Combine(dir.FullName, "disk.raw");
            using (var f = File.Create(image)) f.SetLength(3 << 20);
            using var emulator = new XenEmulator();
            using var runtime = new TapRuntime();
            var taps = ExampleTaps.CreateRegistry().Build(new[] { TapSpec.Parse("dump:quiet=true"), TapSpec.Parse("img") }, new TapContext { Output = TextWriter.Null });
            var logger = new ListLogger();
            XenServeHost.RegisterChainAndLog(runtime, taps, logger);
            using var cts = new CancellationTokenSource();
            var loop = runtime.RunAsync(cts.Token);
            using (var backend = new XenbusBlockBackend(runtime, emulator.Store, emulator.GrantMapperFor(0), emulator.EventChannelFactoryFor(0),
                       new XenbusBackendOptions { DeviceType = "vbd3" }))
            {
                backend.Start();
                var guest = emulator.CreateDomain("guest");
                var nodes = XenVbdToolstack.WriteAttach(emulator.Store, new XenVbdAttachment(guest.Id, "xvda", image) { DeviceType = "vbd3" });
                using var front = new BlkFront(emulator, guest, nodes.DeviceNumber);
                await Waits.For(front.ConnectAsync(), "the guest's disk to connect");
            }
            cts.Cancel();
            await Waits.For(loop, "the loop to stop");
            taps.Dispose();

            var attach = logger.Lines.FirstOrDefault(l => l.StartsWith("Attach", StringComparison.Ordinal));
            Assert.That(attach, Does.Contain($"image={image}").And.Contain("sectors=6144"), string.Join("\n", logger.Lines));
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }
}
