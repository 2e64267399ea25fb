using System.CommandLine;
using BlkTap.Chains;
using BlkTap.Cli.Daemon;
using BlkTap.Cli.Logging;
using BlkTap.Emulator;
using BlkTap.Emulator.Hosting;
using BlkTap.Hosting;
using BlkTap.Linux;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

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
        var daemon = new DaemonOptions();
        var serve = new Command("serve", "serve an external frontend over shmring: DIR/mem shared pages, DIR/evtchn event socket; " +
            "a daemon with --keep-serving: logs on stderr (--log-level, --log-format), sd_notify, SIGTERM stops cleanly. " +
            "Example: blktap shm serve /run/blktap/shm --keep-serving --tap img:path=disk.raw --pidfile /run/blktap/shm.pid");
        serve.Arguments.Add(dir);
        foreach (var o in new Option[] { taps, plugins, keep, handshake }) serve.Options.Add(o);
        daemon.AddTo(serve);
        serve.SetAction((parse, ct) =>
        {
            var seconds = parse.GetValue(handshake);
            if (!(seconds > 0 && seconds <= 3600)) return Task.FromResult(io.BadInput($"--handshake-timeout {seconds}: must be more than 0 and at most 3600 seconds"));
            var settings = daemon.Read(parse, out var problem);
            if (problem != null) return Task.FromResult(io.BadInput($"shm serve: {problem}"));
            return ServeAsync(parse.GetValue(dir)!, ChainOptions.Specs(parse.GetValue(taps)), ChainOptions.Registry(parse.GetValue(plugins)),
                parse.GetValue(keep), TimeSpan.FromSeconds(seconds), io, io.LogSettings(parse), settings, ct);
        });
        var shm = new Command("shm", "the shmring transport: external frontends through a shared file and a socket");
        shm.Subcommands.Add(serve);
        return shm;
    }

    private static async Task<int> ServeAsync(string dir, IReadOnlyList<TapSpec> specs, TapRegistry registry, bool keepServing,
        TimeSpan handshakeTimeout, CliIo io, CliLogSettings log, DaemonSettings daemon, CancellationToken ct)
    {
        if (!Directory.Exists(dir)) return io.BadInput($"shm serve: directory '{dir}' does not exist");
        var output = TextWriter.Synchronized(io.Out);
        // NOTE: CliApp invokes synchronously, where System.CommandLine does not turn SIGINT/SIGTERM into
        // cancellation; the host's lifetime does: it cancels the signal and stops the host, so the process
        // lives until the sessions are closed and the taps flushed, instead of exiting 143 mid-session.
        var builder = ServeHostBuilder.Create(io, log, daemon);
        builder.Services.AddTapRegistry(registry);
        builder.Services.AddSingleton(new TapContext { Output = output });
        builder.Services.AddBlkTap(specs, b =>
        {
            b.Options.Name = "shm";
            // Diagnostics to the logger; the server logs each session's start and end (with its statistics) itself.
            b.ConfigureOptions((o, sp) =>
            {
                o.Diagnostics = TapLogging.Diagnostics(sp!.GetRequiredService<ILoggerFactory>().CreateLogger(TapLogging.Category));
                // The loop waits on the event-channel socket itself: a notification wakes the loop thread directly.
                o.Waiter = new EpollLoopWaiter();
            });
        });
        builder.Services.AddShmringServe(new ShmringServeOptions
        {
            Directory = dir,
            KeepServing = keepServing,
            HandshakeTimeout = handshakeTimeout,
            SessionEnded = result =>
            {
                if (result.Statistics is { } st)
                    output.WriteLine($"session {result.End}: {st.Requests} requests, {st.Errors} errors, {st.Rejected} rejected, {st.BytesRead} bytes read, {st.BytesWritten} bytes written");
                else
                    output.WriteLine($"session {result.End}: {result.Reason}");
            },
        });
        ServeHostBuilder.AddPidFile(builder, daemon);
        var host = builder.Build();
        var logger = host.Services.GetRequiredService<ILoggerFactory>().CreateLogger("BlkTap.Cli.ShmServe");
        ShmringServeService? service = null;
        try
        {
            try
            {
                await host.StartAsync(ct).ConfigureAwait(false);
            }
            catch (Exception ex) when (ServeHostBuilder.Unwrap(ex) is IOException or MetricsEndpointException)
            {
                return io.BadInput($"shm serve: {ServeHostBuilder.Unwrap(ex).Message}");
            }
            service = host.Services.GetRequiredService<ShmringServeService>();
            logger.LogInformation("shm: listening on {Socket}, chain {Chain}", service.SocketPath, string.Join(" -> ", specs.Select(s => s.Text)));
            await host.WaitForShutdownAsync(ct).ConfigureAwait(false);
            // NOTE: with --keep-serving only a signal ends the server, and it exits 0 whatever the last
            // session did (each session's outcome is its own `session ...` line). Taking the last
            // session's code made the exit depend on whether the signal landed before or after the
            // server was back waiting for the next frontend (issue 13, race 2).
            if (keepServing) return CliApp.Ok;
            return service.LastSession?.End is ShmringSessionEnd.Refused or ShmringSessionEnd.ProtocolError ? CliApp.Failure : CliApp.Ok;
        }
        finally
        {
            // Disposing the host closes the taps, which flushes the terminator (img) before the process exits.
            await ServeHostBuilder.DisposeAsync(host).ConfigureAwait(false);
            if (service is { StoppedByHost: true } || ct.IsCancellationRequested)
                logger.LogInformation("shm: stopped: sessions closed, taps flushed and closed, socket removed");
        }
    }
}
