using BlkTap.Testing.Logging;
using System.Diagnostics;
using System.Text;
using System.Threading.Channels;
using BlkTap.Chains;
using BlkTap.Emulator;
using BlkTap.Examples;
using BlkTap.Testing;
using BlkTap.Testing.Native;
using NUnit.Framework;

namespace BlkTap.Testing.Shmring;

/// <summary>Shared pieces of the shmring tests: the C frontend, the CLI as a child process, an in-process server.</summary>
internal static class ShmHarness
{
    public static IEnumerable<BlkifProtocol> Abis => [BlkifProtocol.X86_64, BlkifProtocol.X86_32];

    /// <summary>Native/shm_frontend.c built for <paramref name="protocol"/> (gcc -m32 for x86_32-abi).</summary>
    public static string Frontend(BlkifProtocol protocol) => NativeAbi.Build("shm_frontend.c", protocol);

    public static string NewDir() => Directory.CreateTempSubdirectory("blktap-shm-").FullName;

    /// <summary>Runs the C frontend to completion.</summary>
    public static ProcessResult RunFrontend(BlkifProtocol protocol, string dir, params string[] args) =>
        Peers.Run(Frontend(protocol), [dir, .. args], TimeSpan.FromSeconds(60));

    /// <summary>Starts <c>dotnet blktap.dll shm serve DIR ...</c> as a child process.</summary>
    public static CliProcess StartServe(string dir, params string[] args)
    {
        var dll = Path.Combine(TestContext.CurrentContext.TestDirectory, "blktap.dll");
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { dll, "shm", "serve", dir }.Concat(args)) psi.ArgumentList.Add(a);
        var p = Process.Start(psi) ?? throw new InvalidOperationException("cannot start dotnet blktap.dll");
        var cli = new CliProcess(p);
        var socket = Path.Combine(dir, ShmringProtocol.EventChannelFileName);
        var sw = Stopwatch.StartNew();
        while (!File.Exists(socket))
        {
            if (p.HasExited) Assert.Fail($"shm serve exited {p.ExitCode} before listening:\n{cli.Wait(TimeSpan.FromSeconds(60))}");
            if (sw.Elapsed > TimeSpan.FromSeconds(60)) Assert.Fail("shm serve did not create its socket within 60 s");
            Thread.Sleep(20);
        }
        return cli;
    }
}

/// <summary>
/// The C frontend as a running child process: its stdout lines can be waited for, and a line on its
/// stdin lets a paused frontend (<c>pause</c> mode) go on.
/// </summary>
internal sealed class FrontendProcess : IDisposable
{
    private readonly LineWatchWriter _out = new();
    private readonly StringBuilder _err = new();
    private readonly TaskCompletionSource _exited = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public FrontendProcess(BlkifProtocol protocol, string dir, params string[] args)
    {
        var psi = new ProcessStartInfo(ShmHarness.Frontend(protocol))
        {
            RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        foreach (var a in new[] { dir }.Concat(args)) psi.ArgumentList.Add(a);
        Process = new Process { StartInfo = psi, EnableRaisingEvents = true };
        Process.OutputDataReceived += (_, e) => { if (e.Data != null) _out.WriteLine(e.Data); };
        Process.ErrorDataReceived += (_, e) => { if (e.Data != null) lock (_err) _err.AppendLine(e.Data); };
        Process.Exited += (_, _) => _exited.TrySetResult();
        Process.Start();
        Process.BeginOutputReadLine();
        Process.BeginErrorReadLine();
    }

    public Process Process { get; }
    public string Output { get { lock (_err) return _out.Text + _err; } }

    /// <summary>Waits (up to 60 s) for a stdout line containing <paramref name="text"/>; fails the test if the program exits first.</summary>
    public async Task WaitForLineAsync(string text)
    {
        var line = _out.WhenLine(text);
        if (_out.Text.Contains(text, StringComparison.Ordinal)) return;
        await Task.WhenAny(line, _exited.Task, Task.Delay(TimeSpan.FromSeconds(60)));
        if (!line.IsCompleted) Assert.Fail($"the C frontend did not print '{text}' within 60 s (exited: {Process.HasExited}):\n{Output}");
    }

    /// <summary>Lets a paused frontend go on.</summary>
    public void Continue() { Process.StandardInput.WriteLine("go"); Process.StandardInput.Flush(); }

    /// <summary>Waits (up to 60 s) for the exit; returns the exit code.</summary>
    public async Task<int> ExitAsync()
    {
        await Task.WhenAny(_exited.Task, Task.Delay(TimeSpan.FromSeconds(60)));
        if (!Process.HasExited) Assert.Fail("the C frontend did not exit within 60 s:\n" + Output);
        Process.WaitForExit();
        return Process.ExitCode;
    }

    public void Dispose()
    {
        if (!Process.HasExited) { Process.Kill(entireProcessTree: true); Process.WaitForExit(); }
        Process.Dispose();
    }
}

/// <summary>A running <c>blktap</c> child process with its output collected.</summary>
internal sealed class CliProcess : IDisposable
{
    private readonly StringBuilder _out = new();
    private readonly StringBuilder _err = new();

    public CliProcess(Process process)
    {
        Process = process;
        process.OutputDataReceived += (_, e) => { if (e.Data != null) lock (_out) _out.AppendLine(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data != null) lock (_err) _err.AppendLine(e.Data); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
    }

    public Process Process { get; }
    public string StdOut { get { lock (_out) return _out.ToString(); } }
    public string StdErr { get { lock (_err) return _err.ToString(); } }

    /// <summary>Waits for exit (killing it after <paramref name="timeout"/>) and returns a description for messages.</summary>
    public string Wait(TimeSpan timeout)
    {
        if (!Process.WaitForExit(timeout))
        {
            Process.Kill(entireProcessTree: true);
            Process.WaitForExit();
            Assert.Fail($"shm serve did not exit within {timeout.TotalSeconds} s\nstdout:\n{Tail(StdOut)}\nstderr:\n{StdErr}");
        }
        Process.WaitForExit();
        return $"exit {Process.ExitCode}\nstdout:\n{Tail(StdOut)}\nstderr:\n{StdErr}";
    }

    /// <summary>Sends a POSIX signal (TERM, INT) to the process.</summary>
    public void Signal(string name) => Peers.Run("/bin/kill", [$"-{name}", Process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]).EnsureSuccess("kill");

    private static string Tail(string s) => s.Length > 4000 ? "..." + s[^4000..] : s;

    public void Dispose()
    {
        if (!Process.HasExited) { Process.Kill(entireProcessTree: true); Process.WaitForExit(); }
        Process.Dispose();
    }
}

/// <summary>
/// An <see cref="ShmringServer"/> in this process, serving connection after connection on a chain of
/// built-in taps plus optional extra hooks (registered first, frontend side). Results arrive in order.
/// </summary>
internal sealed class InProcessShm : IAsyncDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private readonly TapChain _taps;
    private readonly Task _loop;
    private readonly Task _serving;
    private readonly List<string> _log = new();
    private readonly Channel<ShmringSessionResult> _results = Channel.CreateUnbounded<ShmringSessionResult>();

    public InProcessShm(string chain, Action<TapRuntime>? extraHooks = null, TimeSpan? handshakeTimeout = null)
    {
        Dir = ShmHarness.NewDir();
        Runtime = new TapRuntime(new TapRuntimeOptions { Name = "shm-test", Diagnostics = d => AddLog(d.ToString()) });
        extraHooks?.Invoke(Runtime);
        _taps = ExampleTaps.CreateRegistry().Build([TapSpec.Parse(chain)], new TapContext { Output = TextWriter.Null });
        TapChain.Register(Runtime, _taps);
        Options = new ShmringServerOptions { Logger = new LineLogger(AddLog), HandshakeTimeout = handshakeTimeout ?? TimeSpan.FromSeconds(60) };
        Server = new ShmringServer(Dir, Runtime, Options);
        Server.Start();
        _loop = Runtime.RunAsync();
        _serving = Task.Run(async () =>
        {
            while (!_stop.IsCancellationRequested)
            {
                var r = await Server.ServeOneAsync(_stop.Token);
                await _results.Writer.WriteAsync(r);
            }
        });
    }

    public string Dir { get; }
    public TapRuntime Runtime { get; }
    public ShmringServer Server { get; }

    /// <summary>The server's options: a test may lengthen the handshake deadline before the next frontend connects.</summary>
    public ShmringServerOptions Options { get; }

    public string Log { get { lock (_log) return string.Join('\n', _log); } }

    private void AddLog(string line) { lock (_log) _log.Add(line); }

    /// <summary>The next finished connection's result.</summary>
    public async Task<ShmringSessionResult> NextResultAsync()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        try { return await _results.Reader.ReadAsync(timeout.Token); }
        catch (OperationCanceledException) { Assert.Fail($"no session ended within 60 s; log:\n{Log}"); throw; }
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        try { await _serving.WaitAsync(TimeSpan.FromSeconds(60)); } catch (OperationCanceledException) { }
        Runtime.Stop();
        await _loop.WaitAsync(TimeSpan.FromSeconds(60));
        _taps.Dispose();
        Server.Dispose();
        Runtime.Dispose();
        try { Directory.Delete(Dir, recursive: true); } catch (IOException) { }
    }
}
