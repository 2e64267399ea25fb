using System.CommandLine;
using BlkTap.Chains;
using BlkTap.Emulator;

namespace BlkTap.Cli.Commands;

/// <summary>
/// <c>blktap shm serve DIR --tap ...</c>: serves an external frontend (any language, Xen's C ring
/// macros) over the shmring transport (docs/shmring.md). One session, then exit; with
/// <c>--keep-serving</c>, one session after another until SIGINT/SIGTERM.
/// </summary>
/// <remarks>
/// Exit codes: 0 the session ended with the frontend disconnecting; 1 the session was refused at the
/// handshake or closed for a protocol violation; 2 bad usage (missing directory, unknown tap, socket
/// in use). SIGINT/SIGTERM stop cleanly (sessions closed, taps flushed and closed, socket removed)
/// and exit 0; with <c>--keep-serving</c>, where only a signal ends the server, the exit is always 0
/// after a clean stop (each session's outcome is its <c>session ...</c> line on stdout).
/// </remarks>
internal static class ShmCommand
{
    public static Command Create(CliIo io)
    {
        var dir = new Argument<string>("DIR") { Description = "directory holding the frontend's 'mem' file and the 'evtchn' socket the tap listens on" };
        var taps = ChainOptions.Tap();
        var plugins = ChainOptions.Plugins();
        var keep = new Option<bool>("--keep-serving") { Description = "serve the next frontend after a session ends, until SIGINT/SIGTERM" };
        var handshake = new Option<double>("--handshake-timeout") { Description = "seconds a frontend has to send its handshake line (default 10)", DefaultValueFactory = _ => 10 };
        var serve = new Command("serve", "serve an external frontend over shmring: DIR/mem shared pages, DIR/evtchn event socket");
        serve.Arguments.Add(dir);
        foreach (var o in new Option[] { taps, plugins, keep, handshake }) serve.Options.Add(o);
        serve.SetAction((parse, ct) =>
        {
            var seconds = parse.GetValue(handshake);
            if (!(seconds > 0 && seconds <= 3600)) return Task.FromResult(io.BadInput($"--handshake-timeout {seconds}: must be more than 0 and at most 3600 seconds"));
            return ServeAsync(parse.GetValue(dir)!, ChainOptions.Specs(parse.GetValue(taps)), ChainOptions.Registry(parse.GetValue(plugins)),
                parse.GetValue(keep), TimeSpan.FromSeconds(seconds), io, ct);
        });
        var shm = new Command("shm", "the shmring transport: external frontends through a shared file and a socket");
        shm.Subcommands.Add(serve);
        return shm;
    }

    private static async Task<int> ServeAsync(string dir, IReadOnlyList<TapSpec> specs, TapRegistry registry, bool keepServing,
        TimeSpan handshakeTimeout, CliIo io, CancellationToken ct)
    {
        if (!Directory.Exists(dir)) return io.BadInput($"shm serve: directory '{dir}' does not exist");
        // NOTE: CliApp invokes synchronously, where System.CommandLine does not turn SIGINT/SIGTERM into
        // cancellation; without these registrations the runtime's default would exit 143 mid-session
        // without closing the taps. Cancelling the signal keeps the process alive until cleanup ends.
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        using var sigint = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGINT, c => { c.Cancel = true; stop.Cancel(); });
        using var sigterm = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGTERM, c => { c.Cancel = true; stop.Cancel(); });
        ct = stop.Token;
        var output = TextWriter.Synchronized(io.Out);
        var errors = TextWriter.Synchronized(io.Err);
        var chain = registry.Build(specs, new TapContext { Output = output });
        var runtime = new TapRuntime(new TapRuntimeOptions
        {
            Name = "shm",
            Diagnostics = d => errors.WriteLine($"blktap: {d}"),
            // The loop waits on the event-channel socket itself: a notification wakes the loop thread directly.
            Waiter = new BlkTap.Linux.EpollLoopWaiter(),
        });
        ShmringServer? server = null;
        Task? loop = null;
        try
        {
            TapChain.Register(runtime, chain);
            server = new ShmringServer(dir, runtime, new ShmringServerOptions
            {
                HandshakeTimeout = handshakeTimeout,
                Log = line => errors.WriteLine($"blktap: shm: {line}"),
            });
            try { server.Start(); }
            catch (IOException ex) { return io.BadInput($"shm serve: {ex.Message}"); }
            loop = runtime.RunAsync(CancellationToken.None);
            errors.WriteLine($"blktap: shm: listening on {server.SocketPath}, chain {string.Join(" -> ", specs.Select(s => s.Text))}");
            int code = CliApp.Ok;
            while (true)
            {
                var result = await server.ServeOneAsync(ct).ConfigureAwait(false);
                if (result.Statistics is { } st)
                    output.WriteLine($"session {result.End}: {st.Requests} requests, {st.Errors} errors, {st.Rejected} rejected, {st.BytesRead} bytes read, {st.BytesWritten} bytes written");
                else if (result.End != ShmringSessionEnd.Stopped)
                    output.WriteLine($"session {result.End}: {result.Reason}");
                code = result.End is ShmringSessionEnd.Refused or ShmringSessionEnd.ProtocolError ? CliApp.Failure : CliApp.Ok;
                if (result.End == ShmringSessionEnd.Stopped || !keepServing || ct.IsCancellationRequested) break;
            }
            // NOTE: with --keep-serving only a signal ends the server, and it exits 0 whatever the last
            // session did (each session's outcome is its own `session ...` line). Taking the last
            // session's code made the exit depend on whether the signal landed before or after the
            // server was back waiting for the next frontend (issue 13, race 2).
            return keepServing ? CliApp.Ok : code;
        }
        finally
        {
            runtime.Stop();
            if (loop != null) await loop.ConfigureAwait(false);
            // Closing the taps flushes the terminator (img) before the process exits.
            chain.Dispose();
            server?.Dispose();
            runtime.Dispose();
            if (ct.IsCancellationRequested) errors.WriteLine("blktap: shm: stopped: sessions closed, taps flushed and closed, socket removed");
        }
    }
}
