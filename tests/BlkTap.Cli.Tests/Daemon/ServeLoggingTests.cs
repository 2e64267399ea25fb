using System.Text.Json;
using BlkTap.Nbd;
using BlkTap.Testing;
using BlkTap.Testing.Shmring;
using NUnit.Framework;

namespace BlkTap.Cli.Tests.Daemon;

/// <summary>
/// The serve verbs' logging and daemon options in process: <c>--log-level</c>, <c>--log-format json</c>, the warning
/// for a TCP listener off loopback, and bad <c>--metrics</c>/<c>--pidfile</c> values.
/// </summary>
[TestFixture]
public sealed class ServeLoggingTests
{
    private string _dir = null!;
    private string _sock = null!;

    [SetUp]
    public void SetUp()
    {
        _dir = Directory.CreateTempSubdirectory("blktap-serve-log-").FullName;
        _sock = Path.Combine(_dir, "s.sock");
    }

    [TearDown]
    public void TearDown() { try { Directory.Delete(_dir, true); } catch (IOException) { } }

    /// <summary>Runs nbd serve with <paramref name="args"/>, lets <paramref name="whileServing"/> use it, stops it; returns stdout, stderr.</summary>
    private static async Task<(string Out, string Err)> ServeAsync(string[] args, Action<string>? whileServing = null)
    {
        using var stop = new CancellationTokenSource();
        var stdout = new LineWatchWriter();
        var stderr = new LineWatchWriter();
        var ready = stdout.WhenLine("blktap: serving ");
        var serve = CliApp.RunAsync(args, stdout, stderr, stop.Token);
        await Waits.For(Task.WhenAny(ready, serve), "nbd serve to be ready");
        Assert.That(ready.IsCompleted, Is.True, "nbd serve did not start: " + stderr.Text);
        if (whileServing != null) await Task.Run(() => whileServing(stdout.Text));
        stop.Cancel();
        Assert.That(await Waits.For(serve, "nbd serve to stop"), Is.EqualTo(CliApp.Ok), stderr.Text);
        return (stdout.Text, stderr.Text);
    }

    private static void OneRequest(string socket)
    {
        using var client = new NbdBlockingClient(NbdUri.ForUnix(socket));
        Assert.That(client.Read(0, new byte[512]), Is.EqualTo(0));
    }

    [Test]
    public async Task LogFormatJson_SessionServed_EveryStderrLineIsAJsonObjectWithTheStatistics()
    {
        var (_, err) = await ServeAsync(["nbd", "serve", "--unix", _sock, "--tap", "mem:size=1M", "--log-format", "json"], _ => OneRequest(_sock));
        var lines = err.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.That(lines, Is.Not.Empty);
        JsonElement? disconnect = null;
        foreach (var line in lines)
        {
            using var doc = JsonDocument.Parse(line); // throws on a line that is not JSON
            var root = doc.RootElement;
            Assert.That(root.GetProperty("LogLevel").GetString(), Is.Not.Empty, line);
            Assert.That(root.GetProperty("Message").GetString(), Is.Not.Empty, line);
            if (root.GetProperty("Message").GetString()!.StartsWith("Disconnect nbd1", StringComparison.Ordinal)) disconnect = root.Clone();
        }
        Assert.That(disconnect, Is.Not.Null, err);
        var state = disconnect!.Value.GetProperty("State");
        Assert.That(state.GetProperty("Requests").GetInt64(), Is.EqualTo(2), "the read and the final flush: " + err);
        Assert.That(state.GetProperty("BytesRead").GetInt64(), Is.EqualTo(512), err);
        Assert.That(disconnect.Value.GetProperty("Category").GetString(), Is.EqualTo("BlkTap.TapRuntime"));
    }

    [Test]
    public async Task LogLevelWarning_SessionServed_NoInformationLines()
    {
        var (_, err) = await ServeAsync(["nbd", "serve", "--unix", _sock, "--tap", "mem:size=1M", "--log-level", "warning"], _ => OneRequest(_sock));
        Assert.That(err, Is.Empty);
    }

    [Test]
    public async Task LogLevelDefault_SessionServed_AttachAndDisconnectLogged()
    {
        var (_, err) = await ServeAsync(["nbd", "serve", "--unix", _sock, "--tap", "mem:size=1M"], _ => OneRequest(_sock));
        Assert.That(err, Does.Contain("blktap: Attach nbd1 sectors=2048").And.Contain("blktap: Disconnect nbd1: 2 requests"));
    }

    [Test]
    public async Task BindAnyAddress_Serving_WarnsThatTheDiskIsExposedWithoutTls()
    {
        var (_, err) = await ServeAsync(["nbd", "serve", "-p", "0", "--bind", "0.0.0.0", "--tap", "mem:size=1M"]);
        Assert.That(err, Does.Contain("blktap: warning: listening on 0.0.0.0, not a loopback address").And.Contain("not a loopback address").And.Contain("no TLS"));
    }

    [Test]
    public async Task BindLoopback_Serving_NoWarning()
    {
        var (_, err) = await ServeAsync(["nbd", "serve", "-p", "0", "-i", "127.0.0.1", "--tap", "mem:size=1M"]);
        Assert.That(err, Does.Not.Contain("warning:"));
    }

    [Test]
    public async Task ShortOptions_ExportNameAndReadOnly_ClientSeesThem()
    {
        var (stdout, _) = await ServeAsync(["nbd", "serve", "-U", _sock, "-e", "disk", "-r", "--tap", "mem:size=1M"], _ =>
        {
            using var client = new NbdBlockingClient(NbdUri.Parse($"nbd+unix:///disk?socket={_sock}"));
            Assert.That(client.Write(0, new byte[512]), Is.Not.EqualTo(0), "a read-only export refuses writes");
        });
        Assert.That(stdout, Does.Contain($"nbd+unix:///disk?socket={_sock}").And.Contain("read-only"));
    }

    [TestCase("http://127.0.0.1/metrics", "give http://HOST:PORT/PATH")]
    [TestCase("https://127.0.0.1:9/metrics", "give http://HOST:PORT/PATH")]
    [TestCase("not a url", "give http://HOST:PORT/PATH")]
    public async Task BadMetricsUrl_ExitsTwoWithOneLine(string url, string message)
    {
        var err = new StringWriter();
        int code = await CliApp.RunAsync(["nbd", "serve", "--unix", _sock, "--tap", "mem:size=1M", "--metrics", url], new StringWriter(), err, CancellationToken.None);
        Assert.That(code, Is.EqualTo(CliApp.BadInput));
        Assert.That(err.ToString().TrimEnd('\n'), Does.StartWith("blktap: nbd serve: --metrics").And.Contain(message).And.Not.Contain("\n"));
        Assert.That(File.Exists(_sock), Is.False);
    }

    [Test]
    public async Task MetricsPortInUse_ShmServeExitsTwoAndRemovesTheSocket()
    {
        // Another program holds the port.
        var busy = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        busy.Start();
        int port = ((System.Net.IPEndPoint)busy.LocalEndpoint).Port;
        var err = new StringWriter();
        int code = await Waits.For(CliApp.RunAsync(["shm", "serve", _dir, "--tap", "mem:size=1M", "--metrics", $"http://127.0.0.1:{port}/metrics"],
            new StringWriter(), err, CancellationToken.None), "shm serve to give up");
        Assert.That(code, Is.EqualTo(CliApp.BadInput), err.ToString());
        busy.Stop();
        Assert.That(err.ToString(), Does.StartWith($"blktap: shm serve: --metrics http://127.0.0.1:{port}/metrics: cannot listen"));
        Assert.That(File.Exists(Path.Combine(_dir, "evtchn")), Is.False, "the shm socket is removed");
    }

    [Test]
    public async Task PidfileInMissingDirectory_ExitsTwo()
    {
        var err = new StringWriter();
        int code = await CliApp.RunAsync(["nbd", "serve", "--unix", _sock, "--tap", "mem:size=1M", "--pidfile", Path.Combine(_dir, "no", "x.pid")],
            new StringWriter(), err, CancellationToken.None);
        Assert.That(code, Is.EqualTo(CliApp.BadInput));
        Assert.That(err.ToString(), Does.Contain("--pidfile").And.Contain("does not exist"));
    }
}
