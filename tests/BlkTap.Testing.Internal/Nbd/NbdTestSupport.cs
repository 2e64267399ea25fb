using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using BlkTap.Nbd;
using BlkTap.Testing;
using NUnit.Framework;
using BlkTap.Testing.Rigs;

namespace BlkTap.Testing.Nbd;

/// <summary>A peer server process started for one test; killed (whole tree) on Dispose.</summary>
internal sealed class BackgroundPeer : IDisposable
{
    private readonly Process _process;
    private readonly System.Text.StringBuilder _stderr = new();

    public BackgroundPeer(string program, IEnumerable<string> args)
    {
        var psi = new ProcessStartInfo(program) { UseShellExecute = false, RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        _process = Process.Start(psi) ?? throw new InvalidOperationException($"cannot start {program}");
        _process.ErrorDataReceived += (_, e) => { if (e.Data != null) lock (_stderr) _stderr.AppendLine(e.Data); };
        _process.OutputDataReceived += (_, e) => { if (e.Data != null) lock (_stderr) _stderr.AppendLine(e.Data); };
        _process.BeginErrorReadLine();
        _process.BeginOutputReadLine();
    }

    public string Output { get { lock (_stderr) return _stderr.ToString(); } }

    public bool HasExited => _process.HasExited;

    /// <summary>Waits until <paramref name="uri"/> accepts connections.</summary>
    public BackgroundPeer WaitReady(NbdUri uri, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(60));
        while (DateTime.UtcNow < deadline)
        {
            if (_process.HasExited) Assert.Fail($"peer exited with {_process.ExitCode} before listening:\n{Output}");
            if (uri.Transport == NbdTransport.Tcp || File.Exists(uri.SocketPath))
            {
                using var s = uri.Transport == NbdTransport.Unix
                    ? new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified)
                    : new Socket(SocketType.Stream, ProtocolType.Tcp);
                try { s.Connect(uri.ToEndPoint()); return this; }
                catch (SocketException) { }
            }
            Thread.Sleep(20);
        }
        Assert.Fail($"peer did not listen on {uri} in time:\n{Output}");
        return this;
    }

    public void Kill()
    {
        try { if (!_process.HasExited) { _process.Kill(entireProcessTree: true); _process.WaitForExit(5000); } }
        catch (InvalidOperationException) { }
    }

    public void Dispose()
    {
        Kill();
        _process.Dispose();
    }
}

/// <summary>Records completions for client tests.</summary>
internal sealed class RecordingSink : INbdCompletionSink
{
    public readonly Dictionary<ulong, int> Results = [];
    public readonly List<ulong> Order = [];
    public Action<ulong, int>? Then { get; set; }

    public void OnCompleted(ulong userToken, int nbdError)
    {
        Assert.That(Results.ContainsKey(userToken), Is.False, $"token {userToken} completed twice");
        Results[userToken] = nbdError;
        Order.Add(userToken);
        Then?.Invoke(userToken, nbdError);
    }
}

internal static class NbdTestUtil
{
    public static int FreeTcpPort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }

    public static byte[] RandomBytes(int size, int seed)
    {
        var b = new byte[size];
        new Random(seed).NextBytes(b);
        return b;
    }

    /// <summary>A short temp directory (Unix socket paths are limited to 108 bytes).</summary>
    public static string TempDir()
    {
        var d = Path.Combine("/tmp", "nbdt-" + Guid.NewGuid().ToString("N")[..10]);
        Directory.CreateDirectory(d);
        return d;
    }
}
