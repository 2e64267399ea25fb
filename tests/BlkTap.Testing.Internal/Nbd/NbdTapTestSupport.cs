using System.Diagnostics;
using BlkTap.Chains;
using BlkTap.Emulator;
using BlkTap.Examples;
using BlkTap.Nbd;
using BlkTap.Testing;
using NUnit.Framework;

namespace BlkTap.Testing.Nbd;

/// <summary>Shared set-up of the nbd tap and nbd serve tests: peers, rigs built from chain specs, the blktap child process.</summary>
internal static class NbdTapTestSupport
{
    /// <summary>Starts nbdkit on a Unix socket (foreground, killed with the returned peer) and waits until it listens.</summary>
    public static BackgroundPeer Nbdkit(NbdUri uri, params string[] pluginAndArgs)
    {
        var nbdkit = Peers.Require("nbdkit");
        var peer = new BackgroundPeer(nbdkit, ["-f", "-U", uri.SocketPath!, .. pluginAndArgs]);
        return peer.WaitReady(uri);
    }

    /// <summary>A threaded rig (completions come from sockets) whose tap is the chain <paramref name="specs"/>.</summary>
    public static async Task<(EmulatorRig Rig, TapChain Taps, List<string> Diagnostics)> RigAsync(
        IEnumerable<string> specs, int frontends = 2, TextWriter? output = null, TapRegistry? registry = null)
    {
        registry ??= ExampleTaps.CreateRegistry();
        var taps = registry.Build(specs.Select(TapSpec.Parse).ToList(), new TapContext { Output = output ?? TextWriter.Null });
        var diagnostics = new List<string>();
        var rig = await EmulatorRig.StartAsync(new EmulatorRigOptions
        {
            Frontends = frontends,
            Diagnostics = d => { lock (diagnostics) diagnostics.Add(d.ToString()); },
        }, runtime => TapChain.Register(runtime, taps));
        return (rig, taps, diagnostics);
    }

    public static async Task DisposeAsync(EmulatorRig rig, TapChain taps)
    {
        await rig.DisposeAsync();
        taps.Dispose();
    }

    public static string Describe(IReadOnlyList<FrontendResult> results, List<string> diagnostics)
    {
        lock (diagnostics)
            return string.Join("; ", results.SelectMany(r => r.Problems.Select(p => r.Name + ": " + p)))
                + " | diagnostics: " + string.Join(" / ", diagnostics.Take(10));
    }
}

/// <summary>
/// <c>dotnet blktap.dll nbd serve ...</c> as a child process (what users run): waits for the ready line, SIGTERM to stop.
/// </summary>
internal sealed class BlktapServeProcess : IDisposable
{
    private readonly Process _process;
    private readonly System.Text.StringBuilder _out = new(), _err = new();
    private readonly TaskCompletionSource<string> _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public BlktapServeProcess(params string[] args) : this(null, args) { }

    /// <summary>Starts blktap with <paramref name="args"/> and, if given, these environment variables added (NOTIFY_SOCKET).</summary>
    public BlktapServeProcess(IReadOnlyDictionary<string, string>? environment, params string[] args)
    {
        var dll = Path.Combine(TestContext.CurrentContext.TestDirectory, "blktap.dll");
        var psi = new ProcessStartInfo(Peers.Require("dotnet")) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var (key, value) in environment ?? new Dictionary<string, string>()) psi.Environment[key] = value;
        psi.ArgumentList.Add(dll);
        foreach (var a in args) psi.ArgumentList.Add(a);
        _process = Process.Start(psi)!;
        _process.OutputDataReceived += (_, e) =>
        {
            if (e.Data == null) return;
            lock (_out) _out.AppendLine(e.Data);
            if (e.Data.StartsWith("blktap: serving ", StringComparison.Ordinal)) _ready.TrySetResult(e.Data);
        };
        _process.ErrorDataReceived += (_, e) => { if (e.Data != null) lock (_err) _err.AppendLine(e.Data); };
        _process.Exited += (_, _) => _ready.TrySetException(new AssertionException($"blktap exited with {_process.ExitCode} before it was ready\n{Output}"));
        _process.EnableRaisingEvents = true;
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    public int Pid => _process.Id;

    /// <summary>Whether the process has exited (then <see cref="Pid"/> must not be signalled: it may have been reused).</summary>
    public bool HasExited => _process.HasExited;

    public string Output { get { lock (_out) lock (_err) return $"stdout:\n{_out}\nstderr:\n{_err}"; } }

    public string StdErr { get { lock (_err) return _err.ToString(); } }

    /// <summary>Waits for "blktap: serving ..." and returns the line.</summary>
    public string WaitReady(TimeSpan? timeout = null)
    {
        if (!_ready.Task.Wait(timeout ?? TimeSpan.FromSeconds(30))) Assert.Fail("blktap nbd serve did not print its ready line in time\n" + Output);
        return _ready.Task.Result;
    }

    /// <summary>Sends SIGTERM (by pid) and returns the exit code.</summary>
    public int Terminate(TimeSpan? timeout = null)
    {
        // A process that already exited has been reaped and its pid may belong to another process by now (pid_max is
        // 32768 on many machines): signal only a live one, and report what the exit code was otherwise.
        if (_process.HasExited) Assert.Fail($"blktap exited with {_process.ExitCode} before it was asked to stop\n{Output}");
        Peers.Run("kill", ["-TERM", _process.Id.ToString()]).EnsureSuccess("kill -TERM");
        return WaitExit(timeout);
    }

    public int WaitExit(TimeSpan? timeout = null)
    {
        if (!_process.WaitForExit(timeout ?? TimeSpan.FromSeconds(30))) Assert.Fail("blktap did not exit in time\n" + Output);
        _process.WaitForExit();
        return _process.ExitCode;
    }

    public void Dispose()
    {
        try { if (!_process.HasExited) { _process.Kill(); _process.WaitForExit(5000); } }
        catch (InvalidOperationException) { }
        _process.Dispose();
    }
}
