using System.Diagnostics;
using System.Net.Sockets;

namespace BlkTap.Bench;

/// <summary>
/// An NBD server started as a child process on a Unix socket (ours, nbdkit, qemu-nbd), ready once it
/// accepts connections; stopped with SIGTERM (then killed) on Dispose.
/// </summary>
/// <remarks>Threading: one thread.</remarks>
internal sealed class NbdServerProcess : IDisposable
{
    private readonly Process _process;
    private readonly List<string> _output = [];

    private NbdServerProcess(string label, string socket, Process process)
    {
        Label = label;
        Socket = socket;
        _process = process;
    }

    /// <summary>Which server this is.</summary>
    public string Label { get; }

    /// <summary>The Unix socket it listens on.</summary>
    public string Socket { get; }

    /// <summary>
    /// CPU time (user plus system, every thread) the server has used so far: /proc/PID/stat's utime and stime, which
    /// <see cref="Process.TotalProcessorTime"/> reads on Linux. Clock-tick resolution (10 ms): difference it over a
    /// whole fio job.
    /// </summary>
    public TimeSpan CpuTime
    {
        get
        {
            _process.Refresh();
            return _process.TotalProcessorTime;
        }
    }

    /// <summary>The NBD URI of the default export.</summary>
    public string Uri => $"nbd+unix:///?socket={Socket}";

    /// <summary>
    /// Starts <paramref name="program"/> and waits until it is ready: when <paramref name="readyLine"/>
    /// is given, until stdout has a line starting with it; always, until the socket accepts a connection.
    /// Throws <see cref="InvalidOperationException"/> naming the server and its last output on failure.
    /// </summary>
    public static NbdServerProcess Start(string label, string program, IEnumerable<string> args, string socket, string? readyLine = null, TimeSpan? timeout = null)
    {
        if (File.Exists(socket)) File.Delete(socket);
        var psi = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        var p = Process.Start(psi) ?? throw new InvalidOperationException($"{label}: cannot start {program}");
        var server = new NbdServerProcess(label, socket, p);
        var ready = new ManualResetEventSlim(readyLine == null);
        p.OutputDataReceived += (_, e) =>
        {
            if (e.Data == null) return;
            lock (server._output) server._output.Add(e.Data);
            if (readyLine != null && e.Data.StartsWith(readyLine, StringComparison.Ordinal)) ready.Set();
        };
        p.ErrorDataReceived += (_, e) => { if (e.Data != null) lock (server._output) server._output.Add(e.Data); };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        var deadline = Stopwatch.StartNew();
        var limit = timeout ?? TimeSpan.FromSeconds(30);
        try
        {
            while (true)
            {
                if (p.HasExited) throw server.Failure($"exited with code {p.ExitCode} before it was ready");
                if (ready.IsSet && CanConnect(socket)) return server;
                if (deadline.Elapsed > limit) throw server.Failure($"not ready after {limit.TotalSeconds:F0} s");
                Thread.Sleep(20);
            }
        }
        catch
        {
            server.Dispose();
            throw;
        }
    }

    private static bool CanConnect(string socket)
    {
        if (!File.Exists(socket)) return false;
        try
        {
            using var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            s.Connect(new UnixDomainSocketEndPoint(socket));
            return true;
        }
        catch (SocketException) { return false; }
    }

    private InvalidOperationException Failure(string what)
    {
        string tail;
        lock (_output) tail = string.Join(" | ", _output.TakeLast(3));
        return new InvalidOperationException($"{Label} {what}{(tail.Length > 0 ? ": " + tail : "")}");
    }

    public void Dispose()
    {
        try
        {
            if (!_process.HasExited)
            {
                // SIGTERM: every server here stops cleanly on it (ours flushes and removes the socket).
                Posix.Kill(_process.Id);
                if (!_process.WaitForExit(10_000)) _process.Kill(entireProcessTree: true);
            }
            _process.WaitForExit();
        }
        catch (InvalidOperationException) { }
        _process.Dispose();
        try { if (File.Exists(Socket)) File.Delete(Socket); } catch (IOException) { }
    }

    private static class Posix
    {
        public static void Kill(int pid)
        {
            using var kill = Process.Start(new ProcessStartInfo("kill") { ArgumentList = { "-TERM", pid.ToString() }, UseShellExecute = false });
            kill?.WaitForExit();
        }
    }
}
