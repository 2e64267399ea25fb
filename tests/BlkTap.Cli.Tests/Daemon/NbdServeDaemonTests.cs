using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;
using BlkTap.Nbd;
using BlkTap.Testing;
using BlkTap.Testing.Nbd;
using NUnit.Framework;

namespace BlkTap.Cli.Tests.Daemon;

/// <summary>
/// <c>blktap nbd serve</c> as a daemon, run as a child process the way systemd runs it: a Prometheus scrape of
/// <c>--metrics</c> counts exactly the requests a real client sent, SIGTERM stops cleanly and logs the session's
/// statistics, <c>NOTIFY_SOCKET</c> gets READY=1 once the socket listens, <c>--pidfile</c> holds the pid while serving.
/// </summary>
[TestFixture, NonParallelizable]
public sealed class NbdServeDaemonTests
{
    private string _dir = null!;
    private string _sock = null!;

    [SetUp]
    public void SetUp()
    {
        _dir = Directory.CreateTempSubdirectory("blktap-daemon-").FullName;
        _sock = Path.Combine(_dir, "d.sock");
    }

    [TearDown]
    public void TearDown() { try { Directory.Delete(_dir, true); } catch (IOException) { } }

    internal static int FreeTcpPort()
    {
        var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        int port = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return port;
    }

    /// <summary>Sums the samples of <paramref name="metric"/> whose labels contain <paramref name="label"/>.</summary>
    internal static double Sum(string exposition, string metric, string label)
    {
        double sum = 0;
        foreach (var line in exposition.Split('\n'))
        {
            var m = Regex.Match(line, $@"^{Regex.Escape(metric)}\{{(?<labels>[^}}]*)\}} (?<value>\S+)");
            if (m.Success && m.Groups["labels"].Value.Contains(label, StringComparison.Ordinal))
                sum += double.Parse(m.Groups["value"].Value, CultureInfo.InvariantCulture);
        }
        return sum;
    }

    [Test]
    public async Task Metrics_ScrapeAfterClientIo_RequestCountersEqualWhatWasSent()
    {
        int port = FreeTcpPort();
        var url = $"http://127.0.0.1:{port}/metrics";
        using var serve = new BlktapServeProcess("nbd", "serve", "-U", _sock, "--tap", "mem:size=4M", "--metrics", url);
        serve.WaitReady();
        const int writes = 7, reads = 5;
        using (var client = new NbdBlockingClient(NbdUri.ForUnix(_sock)))
        {
            var data = new byte[8192];
            for (int i = 0; i < writes; i++) Assert.That(client.Write((ulong)(i * data.Length), data), Is.EqualTo(0));
            for (int i = 0; i < reads; i++) Assert.That(client.Read((ulong)(i * data.Length), data), Is.EqualTo(0));
            Assert.That(client.Flush(), Is.EqualTo(0));

            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
            var response = await http.GetAsync(url);
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
            var text = await response.Content.ReadAsStringAsync();
            Assert.That(Sum(text, "blktap_requests_total", "blktap_operation=\"write\""), Is.EqualTo(writes), text);
            Assert.That(Sum(text, "blktap_requests_total", "blktap_operation=\"read\""), Is.EqualTo(reads), text);
            Assert.That(Sum(text, "blktap_requests_total", "blktap_operation=\"flush\""), Is.EqualTo(1), text);
            Assert.That(Sum(text, "blktap_requests_total", "blktap_tap=\"nbd\""), Is.EqualTo(writes + reads + 1), text);
            Assert.That(Sum(text, "blktap_written_bytes_total", "blktap_session=\"nbd1\""), Is.EqualTo(writes * 8192), text);
            Assert.That(Sum(text, "blktap_read_bytes_total", "blktap_session=\"nbd1\""), Is.EqualTo(reads * 8192), text);
            Assert.That(Sum(text, "blktap_request_duration_seconds_count", "blktap_operation=\"write\""), Is.EqualTo(writes), text);
            Assert.That(Sum(text, "blktap_sessions", "blktap_tap=\"nbd\""), Is.EqualTo(1), "one client connected: " + text);
            Assert.That(text, Does.Not.Contain("blktap_errors_total"), "no request failed");
        }
        Assert.That(serve.Terminate(), Is.EqualTo(0), serve.Output);
    }

    [Test]
    public void Sigterm_AfterASession_ExitsZeroRemovesSocketAndPidfileAndLogsStatistics()
    {
        var pidFile = Path.Combine(_dir, "serve.pid");
        using var serve = new BlktapServeProcess("nbd", "serve", "--unix", _sock, "--tap", "mem:size=1M", "--pidfile", pidFile);
        serve.WaitReady();
        Assert.That(File.ReadAllText(pidFile), Is.EqualTo(serve.Pid + "\n"), "the pidfile names the server once it is ready");
        using (var client = new NbdBlockingClient(NbdUri.ForUnix(_sock)))
        {
            Assert.That(client.Write(0, new byte[4096]), Is.EqualTo(0));
            Assert.That(client.Read(0, new byte[512]), Is.EqualTo(0));
        }
        Assert.That(serve.Terminate(), Is.EqualTo(0), serve.Output);
        Assert.That(File.Exists(_sock), Is.False, "the socket is removed");
        Assert.That(File.Exists(pidFile), Is.False, "the pidfile is removed");
        // Write, read and the server's final flush when the client hung up.
        Assert.That(serve.StdErr, Does.Contain("blktap: Disconnect nbd1: 3 requests, 0 errors, 0 rejected, 512 bytes read, 4096 bytes written"), serve.Output);
    }

    [Test]
    public async Task NotifySocket_ServeStarts_ReadyArrivesOnceTheSocketListensThenStoppingAtSigterm()
    {
        var notifyPath = Path.Combine(_dir, "notify");
        using var notify = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        notify.Bind(new UnixDomainSocketEndPoint(notifyPath));
        using var serve = new BlktapServeProcess(new Dictionary<string, string> { ["NOTIFY_SOCKET"] = notifyPath },
            "nbd", "serve", "--unix", _sock, "--tap", "mem:size=1M");

        var ready = await ReceiveAsync(notify, serve);
        Assert.That(ready, Does.Contain("READY=1"));
        // READY=1 means clients can connect now: no retry, no wait.
        using (var client = new NbdBlockingClient(NbdUri.ForUnix(_sock)))
            Assert.That(client.Read(0, new byte[512]), Is.EqualTo(0));

        var exit = Task.Run(() => serve.Terminate());
        var stopping = await ReceiveAsync(notify, serve);
        Assert.That(stopping, Does.Contain("STOPPING=1"));
        Assert.That(await Waits.For(exit, "nbd serve to exit"), Is.EqualTo(0), serve.Output);
    }

    private static async Task<string> ReceiveAsync(Socket socket, BlktapServeProcess serve)
    {
        var buffer = new byte[4096];
        using var deadline = new CancellationTokenSource(Waits.Deadline);
        try
        {
            int n = await socket.ReceiveAsync(buffer, SocketFlags.None, deadline.Token);
            return Encoding.ASCII.GetString(buffer, 0, n);
        }
        catch (OperationCanceledException)
        {
            Assert.Fail("no sd_notify datagram within the deadline\n" + serve.Output);
            throw;
        }
    }
}
