using BlkTap.Chains;
using BlkTap.Cli;
using BlkTap.Examples;
using BlkTap.Linux;
using BlkTap.Nbd;
using BlkTap.Nbd.Hosting;
using BlkTap.Testing;
using BlkTap.Testing.Shmring;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using NUnit.Framework;

namespace BlkTap.Cli.Tests.Hosting;

/// <summary><c>nbd serve</c>'s composition under the generic host: the NBD server as a hosted service over the container's chain.</summary>
[TestFixture]
public sealed class NbdServeServiceTests
{
    private string _dir = null!;
    private string _sock = null!;

    [SetUp]
    public void SetUp()
    {
        _dir = Directory.CreateTempSubdirectory("blktap-hosting-nbd-").FullName;
        _sock = Path.Combine(_dir, "s.sock");
    }

    [TearDown]
    public void TearDown() { try { Directory.Delete(_dir, true); } catch (IOException) { } }

    private static void WriteThenReadBack(string socket)
    {
        using var client = new NbdBlockingClient(NbdUri.ForUnix(socket));
        var data = new byte[4096];
        new Random(3).NextBytes(data);
        Assert.That(client.Write(8192, data), Is.EqualTo(0), "NBD write");
        var back = new byte[4096];
        Assert.That(client.Read(8192, back), Is.EqualTo(0), "NBD read");
        Assert.That(back, Is.EqualTo(data), "the client reads back what it wrote");
    }

    [Test]
    public async Task AddNbdServe_HostRunsUntilCancelled_ServesAClientAndRemovesTheSocket()
    {
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Services.AddTapRegistry(ExampleTaps.CreateRegistry());
        builder.Services.AddSingleton(new TapContext { Output = TextWriter.Null });
        builder.Services.AddBlkTap(new[] { TapSpec.Parse("mem:size=1M") }, b => b.ConfigureOptions((o, _) => o.Waiter = new EpollLoopWaiter()));
        builder.Services.AddNbdServe(new NbdServeOptions { UnixPath = _sock });
        var host = builder.Build();
        using var stop = new CancellationTokenSource();
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        host.Services.GetRequiredService<IHostApplicationLifetime>().ApplicationStarted.Register(() => started.TrySetResult());

        var run = host.RunAsync(stop.Token);
        await Waits.For(Task.WhenAny(started.Task, run).Unwrap(), "the host to start");
        var service = host.Services.GetRequiredService<NbdServeService>();
        Assert.That(service.Address, Is.EqualTo($"nbd+unix:///?socket={_sock}"));
        Assert.That(service.Geometry!.Size, Is.EqualTo(1UL << 20));
        await Task.Run(() => WriteThenReadBack(_sock));

        stop.Cancel();
        await Waits.For(run, "the host to stop");
        Assert.That(File.Exists(_sock), Is.False, "the socket is removed at the stop");
    }

    [Test]
    public async Task NbdServeVerb_ClientThenCancellation_ReadyLineUnchangedAndExitsZero()
    {
        using var stop = new CancellationTokenSource();
        var stdout = new LineWatchWriter();
        var stderr = new LineWatchWriter();
        var ready = stdout.WhenLine("blktap: serving ");
        var serve = CliApp.RunAsync(["nbd", "serve", "--unix", _sock, "--tap", "mem:size=2M"], stdout, stderr, stop.Token);
        await Waits.For(Task.WhenAny(ready, serve), "nbd serve to be ready");
        Assert.That(ready.IsCompleted, Is.True, "nbd serve did not start: " + stderr.Text);
        Assert.That(stdout.Text.TrimEnd('\n'), Is.EqualTo($"blktap: serving mem:size=2M at nbd+unix:///?socket={_sock} ({2 << 20} bytes)"));
        await Task.Run(() => WriteThenReadBack(_sock));

        stop.Cancel();
        Assert.That(await Waits.For(serve, "nbd serve to stop"), Is.EqualTo(CliApp.Ok), stderr.Text);
        Assert.That(stderr.Text, Does.Not.Contain("warning:").And.Not.Contain("error:"));
        // The client wrote 4 KiB and read it back; the server's final flush at the hangup is the third request.
        Assert.That(stderr.Text, Does.Contain("blktap: Disconnect nbd1: 3 requests, 0 errors, 0 rejected, 4096 bytes read, 4096 bytes written"),
            "a session's statistics are logged when it ends");
        Assert.That(File.Exists(_sock), Is.False, "the socket is removed at the stop");
    }

    [Test]
    public async Task NbdServeVerb_ImageMissing_ChainErrorFromTheHostsStartExitsBadInput()
    {
        var stderr = new StringWriter();
        int code = await Waits.For(CliApp.RunAsync(["nbd", "serve", "--unix", _sock, "--tap", $"img:path={Path.Combine(_dir, "missing.raw")}"],
            new StringWriter(), stderr, CancellationToken.None), "nbd serve to give up");
        Assert.That(code, Is.EqualTo(CliApp.BadInput), stderr.ToString());
        Assert.That(stderr.ToString().TrimEnd('\n'), Does.StartWith("blktap: tap 'img': ").And.Contain("missing.raw").And.Not.Contain("\n"), "one line, as before the host");
        Assert.That(File.Exists(_sock), Is.False, "nothing listens");
    }
}
