using System.CommandLine;
using System.Net;
using BlkTap.Chains;
using BlkTap.Cli.Daemon;
using BlkTap.Cli.Logging;
using BlkTap.Hosting;
using BlkTap.Linux;
using BlkTap.Nbd.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace BlkTap.Cli.Commands;

/// <summary>
/// <c>blktap nbd serve (-U PATH | -p N [--bind ADDR]) --tap ... [-e NAME] [-r] [--pidfile FILE] [--metrics URL]</c>:
/// an NBD export of any chain, a daemon (<see cref="ServeHostBuilder"/>). Prints one ready line on stdout (then
/// sd_notify READY=1 and the pidfile); logs on stderr; SIGINT/SIGTERM stop accepting, finish in-flight requests,
/// flush, log each session's statistics, close the taps, remove the socket and exit 0.
/// </summary>
internal static class NbdCommand
{
    public static Command Create(CliIo io)
    {
        var nbd = new Command("nbd", "NBD: export a chain to NBD clients");
        nbd.Subcommands.Add(CreateServe(io));
        return nbd;
    }

    private static Command CreateServe(CliIo io)
    {
        var taps = ChainOptions.Tap();
        var plugins = ChainOptions.Plugins();
        var unix = new Option<string>("--unix", "-U") { Description = "listen on this Unix socket path (replaced if it exists)" };
        var port = new Option<int?>("--port", "-p") { Description = "listen on this TCP port (0: any free port, printed in the ready line)" };
        var bind = new Option<string>("--bind", "-i") { Description = "TCP address to bind (default 127.0.0.1; 0.0.0.0 for every interface: a warning, NBD here has no TLS)" };
        var export = new Option<string>("--export", "-e") { Description = "the only export name accepted (default: any name)" };
        var readOnly = new Option<bool>("--readonly", "-r") { Description = "export read-only, whatever the chain allows" };
        var maxInFlight = new Option<int>("--max-in-flight") { Description = "requests one client may have in flight (default 64)", DefaultValueFactory = _ => 64 };
        var daemon = new DaemonOptions();
        var cmd = new Command("serve", "serve a chain to NBD clients (nbdinfo, nbdcopy, qemu, fio --ioengine=nbd, the kernel's nbd-client); " +
            "a daemon: logs on stderr (--log-level, --log-format), sd_notify, SIGTERM stops cleanly. " +
            "Example: blktap nbd serve -U /run/blktap/d.sock --tap img:path=disk.raw --metrics http://127.0.0.1:9110/metrics");
        foreach (var o in new Option[] { unix, port, bind, taps, plugins, export, readOnly, maxInFlight }) cmd.Options.Add(o);
        daemon.AddTo(cmd);
        cmd.SetAction((parse, ct) =>
        {
            var path = parse.GetValue(unix);
            var tcp = parse.GetValue(port);
            var address = parse.GetValue(bind);
            if ((path == null) == (tcp == null)) return Task.FromResult(io.BadInput("nbd serve: give exactly one of --unix PATH or --port N"));
            if (address != null && tcp == null) return Task.FromResult(io.BadInput("nbd serve: --bind needs --port"));
            if (tcp is < 0 or > 65535) return Task.FromResult(io.BadInput($"nbd serve: --port {tcp}: must be 0 to 65535"));
            IPAddress? ip = null;
            if (address != null && !IPAddress.TryParse(address, out ip)) return Task.FromResult(io.BadInput($"nbd serve: --bind '{address}' is not an IP address"));
            if (path != null && System.Text.Encoding.UTF8.GetByteCount(path) > 107) return Task.FromResult(io.BadInput($"nbd serve: --unix '{path}': a Unix socket path must be at most 107 bytes"));
            if (path != null && Path.GetDirectoryName(Path.GetFullPath(path)) is { } dir && !Directory.Exists(dir)) return Task.FromResult(io.BadInput($"nbd serve: --unix '{path}': directory '{dir}' does not exist"));
            var daemonSettings = daemon.Read(parse, out var daemonProblem);
            if (daemonProblem != null) return Task.FromResult(io.BadInput($"nbd serve: {daemonProblem}"));
            int inFlight = parse.GetValue(maxInFlight);
            if (inFlight is < 1 or > 4096) return Task.FromResult(io.BadInput($"nbd serve: --max-in-flight {inFlight}: must be 1 to 4096"));
            Settings settings;
            try
            {
                settings = new Settings(ChainOptions.Specs(parse.GetValue(taps)), ChainOptions.Registry(parse.GetValue(plugins)),
                    path, tcp, ip, parse.GetValue(export), parse.GetValue(readOnly), inFlight, daemonSettings, io.LogSettings(parse));
            }
            catch (ChainSpecException ex) { return Task.FromResult(io.BadInput(ex.Message)); }
            return ServeAsync(settings, io, ct);
        });
        return cmd;
    }

    private sealed record Settings(IReadOnlyList<TapSpec> Specs, TapRegistry Registry, string? UnixPath, int? Port, IPAddress? Bind,
        string? ExportName, bool ReadOnly, int MaxInFlight, DaemonSettings Daemon, CliLogSettings Log);

    private static async Task<int> ServeAsync(Settings settings, CliIo io, CancellationToken ct)
    {
        var chain = string.Join(" -> ", settings.Specs.Select(s => s.Text));
        var errLock = new object();
        // Until the export is probed, an error a tap reports (a terminator that cannot open its disk: a
        // missing image, an NBD server that answers garbage) is kept: if it leaves the disk without a size,
        // it becomes the one line of a bad-input exit.
        string? startError = null;
        bool started = false;
        var builder = ServeHostBuilder.Create(io, settings.Log, settings.Daemon);
        builder.Services.AddTapRegistry(settings.Registry);
        builder.Services.AddSingleton(new TapContext { Output = io.Out });
        builder.Services.AddBlkTap(settings.Specs, b =>
        {
            b.Options.Name = "nbd";
            b.ConfigureOptions((o, sp) =>
            {
                var log = TapLogging.Diagnostics(sp!.GetRequiredService<ILoggerFactory>().CreateLogger(TapLogging.Category));
                o.Diagnostics = d =>
                {
                    if (d.Level == TapDiagnosticLevel.Information) return;
                    lock (errLock)
                    {
                        if (!started && d.Level == TapDiagnosticLevel.Error) { startError ??= d.Message; return; }
                    }
                    log(d);
                };
                // The loop watches the client sockets itself: one thread serves sockets, hooks and image.
                o.Waiter = new EpollLoopWaiter();
            });
            // Attach, connect and close lines; a close carries the session's statistics. Not for the export's probe before
            // the start: a chain that cannot serve is one line and exit 2.
            b.AddControlHook("log", sp =>
            {
                var hook = TapLogging.ControlHook(sp.GetRequiredService<ILoggerFactory>().CreateLogger(TapLogging.Category));
                return Hook.Control(e =>
                {
                    lock (errLock) if (!started) return;
                    hook.OnControl(e);
                });
            });
        });
        builder.Services.AddNbdServe(new NbdServeOptions
        {
            UnixPath = settings.UnixPath,
            Port = settings.Port,
            Bind = settings.Bind,
            ExportName = settings.ExportName,
            ReadOnly = settings.ReadOnly,
            MaxInFlight = settings.MaxInFlight,
        });
        ServeHostBuilder.AddPidFile(builder, settings.Daemon);
        var host = builder.Build();
        try
        {
            try
            {
                await host.StartAsync(ct);
            }
            catch (Exception ex) when (ServeHostBuilder.Unwrap(ex) is NbdServeException or ChainSpecException or MetricsEndpointException)
            {
                return ServeHostBuilder.Unwrap(ex) switch
                {
                    NbdServeException { Failure: NbdServeFailure.NoDisk } => NoDisk(),
                    NbdServeException failed => io.BadInput($"nbd serve: {failed.Message}"),
                    var other => io.BadInput(other.Message),
                };
            }
            lock (errLock)
            {
                started = true;
                if (startError != null) host.Services.GetRequiredService<ILoggerFactory>().CreateLogger(TapLogging.Category).LogError("{Message}", startError);
            }
            var service = host.Services.GetRequiredService<NbdServeService>();
            var geometry = service.Geometry!;
            lock (errLock)
            {
                io.Out.WriteLine($"blktap: serving {chain} at {service.Address} ({geometry.Size} bytes{(geometry.ReadOnly ? ", read-only" : "")})");
                io.Out.Flush();
            }
            // SIGINT/SIGTERM (the host's lifetime) or the caller's token: stop accepting, let in-flight requests
            // finish and be answered, flush, close every session, remove the socket; then the taps close.
            await host.WaitForShutdownAsync(ct);
            return CliApp.Ok;
        }
        finally
        {
            await ServeHostBuilder.DisposeAsync(host);
        }

        int NoDisk()
        {
            lock (errLock) started = true;
            return startError != null
                ? io.BadInput($"{startError}: nothing to serve")
                : io.BadInput($"the chain {chain} gives the disk no size (its terminator could not open the disk): nothing to serve");
        }
    }
}
