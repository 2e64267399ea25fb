using System.CommandLine;
using BlkTap.Chains;
using BlkTap.Cli.Daemon;
using BlkTap.Linux;
using BlkTap.Xen;
using BlkTap.Xen.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace BlkTap.Cli.Commands;

/// <summary>
/// <c>blktap xen serve|attach|detach</c>: the real Xen backend. <c>serve</c> runs the tap in dom0 as a hosted
/// service (systemd-aware) until SIGTERM; <c>attach</c>/<c>detach</c> write the toolstack's xenstore nodes that
/// connect a guest's disk to it.
/// </summary>
internal static class XenCommand
{
    public static Command Create(CliIo io)
    {
        var cmd = new Command("xen", "the real Xen backend: serve a chain to guests from dom0, attach and detach guest disks");
        cmd.Subcommands.Add(Serve(io));
        cmd.Subcommands.Add(Attach(io));
        cmd.Subcommands.Add(Detach(io));
        return cmd;
    }

    private static Option<int> BackendDomid() => new("--backend-domid") { Description = "the domain the backend runs in (default 0, dom0)", DefaultValueFactory = _ => 0 };

    // NOTE: "vbd3" is libxl's backend kind for a user-space block backend (XenServer's tapback); the kernel's
    // xen-blkback only watches backend/vbd, so serving vbd3 never races blkback for the same device.
    private static Option<string> DeviceType() => new("--type") { Description = "backend device type: vbd3 (default; the kernel's blkback ignores it) or vbd (replace blkback)", DefaultValueFactory = _ => "vbd3" };

    private static string? CheckCommon(int backendDomid, string type)
    {
        if (backendDomid is < 0 or >= XenDomainIds.FirstReserved) return $"--backend-domid {backendDomid}: must be a domain id from 0 to 32751";
        if (type is not ("vbd" or "vbd3")) return $"--type '{type}': use vbd3 or vbd";
        return null;
    }

    private static Command Serve(CliIo io)
    {
        var taps = ChainOptions.Tap();
        var plugins = ChainOptions.Plugins();
        var backendDomid = BackendDomid();
        var type = DeviceType();
        var device2005 = new Option<bool>("--device2005") { Description = "legacy: serve through the 2005 /dev/blktap driver instead of xenstore (see docs/xen-deploy.md)" };
        var maxQueues = new Option<int>("--max-queues")
        {
            Description = $"rings a guest may connect per disk (multi-queue-max-queues, 1..{XenbusBackendOptions.MaxQueuesLimit}; default the processor count, as blkback)",
            DefaultValueFactory = _ => new XenbusBackendOptions().MaxQueues,
        };
        var noPersistent = new Option<bool>("--no-persistent-grants") { Description = "do not offer feature-persistent (map and unmap every request's pages, as before)" };
        var daemon = new DaemonOptions();
        var cmd = new Command("serve", "serve the chain to guest disks (xenstore backend/<type>) until SIGTERM; logs on stderr (--log-level, --log-format; " +
            "journald under systemd), sd_notify. Example: blktap xen serve --tap img --metrics http://127.0.0.1:9110/metrics");
        foreach (var o in new Option[] { taps, plugins, backendDomid, type, device2005, maxQueues, noPersistent }) cmd.Options.Add(o);
        daemon.AddTo(cmd);
        cmd.SetAction(async (parse, ct) =>
        {
            int be = parse.GetValue(backendDomid);
            string t = parse.GetValue(type)!;
            var problem = CheckCommon(be, t);
            if (problem != null) return io.BadInput(problem);
            int queues = parse.GetValue(maxQueues);
            if (queues is < 1 or > XenbusBackendOptions.MaxQueuesLimit) return io.BadInput($"--max-queues {queues}: must be 1 to {XenbusBackendOptions.MaxQueuesLimit}");
            var daemonSettings = daemon.Read(parse, out var daemonProblem);
            if (daemonProblem != null) return io.BadInput($"xen serve: {daemonProblem}");
            IReadOnlyList<TapSpec> specs;
            TapRegistry registry;
            try
            {
                specs = ChainOptions.Specs(parse.GetValue(taps));
                registry = ChainOptions.Registry(parse.GetValue(plugins));
                // Check the chain before touching Xen: a bad --tap is reported the same everywhere.
                registry.Build(specs, new TapContext { Output = io.Out, CheckOnly = true }).Dispose();
            }
            catch (ChainSpecException ex)
            {
                return io.BadInput(ex.Message);
            }
            if (parse.GetValue(device2005)) return await XenDevice2005Serve.RunAsync(io, specs, registry, ct);
            var unavailable = XenDom0Backend.Unavailable();
            if (unavailable != null) return io.BadInput(unavailable);

            var builder = XenServeHost.CreateBuilder();
            ServeHostBuilder.AddDaemon(builder, io, io.LogSettings(parse), daemonSettings);
            XenServeHost.Compose(builder.Services, specs, registry, new XenbusBackendOptions
            {
                BackendDomain = (ushort)be, DeviceType = t, MaxQueues = queues, FeaturePersistent = !parse.GetValue(noPersistent),
            }, io.Out);
            builder.Services.AddXenPlatform();
            ServeHostBuilder.AddPidFile(builder, daemonSettings);
            try
            {
                // RunAsync stops the backend, then disposes the host: the platform, the runtime, then the chain's taps.
                await builder.Build().RunAsync(ct);
            }
            catch (Exception ex) when (ServeHostBuilder.Unwrap(ex) is XenNotAvailableException or ChainSpecException or MetricsEndpointException)
            {
                return io.BadInput(ServeHostBuilder.Unwrap(ex).Message);
            }
            catch (Exception ex) when (ServeHostBuilder.Unwrap(ex) is LinuxInteropException failed) // XenInteropException, or a libc call on its behalf (pipe2, epoll)
            {
                io.Err.WriteLine($"blktap: {failed.Message}");
                return CliApp.Failure;
            }
            return CliApp.Ok;
        });
        return cmd;
    }

    private static Command Attach(CliIo io)
    {
        var domain = new Option<int>("--domain") { Description = "the guest's domain id", Required = true };
        var vdev = new Option<string>("--vdev") { Description = "the guest's disk name (xvdb, sdc) or device number", Required = true };
        var parameters = new Option<string>("--params") { Description = "the image identifier handed to the chain at attach (the img tap opens it)", Required = true };
        var backendDomid = BackendDomid();
        var type = DeviceType();
        var readOnly = new Option<bool>("--readonly") { Description = "attach read-only (mode=r)" };
        var cmd = new Command("attach", "write the xenstore nodes (frontend and backend, with permissions, in one transaction) that give a guest a disk served by 'blktap xen serve'");
        foreach (var o in new Option[] { domain, vdev, parameters, backendDomid, type, readOnly }) cmd.Options.Add(o);
        cmd.SetAction(parse =>
        {
            int be = parse.GetValue(backendDomid);
            string t = parse.GetValue(type)!;
            int fe = parse.GetValue(domain);
            var problem = CheckCommon(be, t) ?? (fe is < 0 or >= XenDomainIds.FirstReserved ? $"--domain {fe}: must be a domain id from 0 to 32751" : null);
            if (problem != null) return io.BadInput(problem);
            var attachment = new XenVbdAttachment((ushort)fe, parse.GetValue(vdev)!, parse.GetValue(parameters)!)
            {
                BackendDomain = (ushort)be,
                DeviceType = t,
                ReadOnly = parse.GetValue(readOnly),
            };
            return WithStore(io, store =>
            {
                var nodes = XenVbdToolstack.Attach(store, attachment);
                io.Out.WriteLine($"attached {attachment.VirtualDevice} (device {nodes.DeviceNumber}) of domain {fe}: {nodes.FrontendPath} -> {nodes.BackendPath}");
                return CliApp.Ok;
            });
        });
        return cmd;
    }

    private static Command Detach(CliIo io)
    {
        var domain = new Option<int>("--domain") { Description = "the guest's domain id", Required = true };
        var vdev = new Option<string>("--vdev") { Description = "the guest's disk name (xvdb) or device number", Required = true };
        var backendDomid = BackendDomid();
        var type = DeviceType();
        var timeout = new Option<int>("--timeout") { Description = "seconds to wait for the guest to let go (default 10)", DefaultValueFactory = _ => 10 };
        var force = new Option<bool>("--force") { Description = "remove the nodes even if the guest did not let go in time" };
        var cmd = new Command("detach", "ask the guest and the backend to close a disk (online=0, state=Closing), wait for Closed, remove the nodes");
        foreach (var o in new Option[] { domain, vdev, backendDomid, type, timeout, force }) cmd.Options.Add(o);
        cmd.SetAction(parse =>
        {
            int be = parse.GetValue(backendDomid);
            string t = parse.GetValue(type)!;
            int fe = parse.GetValue(domain);
            int seconds = parse.GetValue(timeout);
            var problem = CheckCommon(be, t) ?? (fe is < 0 or >= XenDomainIds.FirstReserved ? $"--domain {fe}: must be a domain id from 0 to 32751" : null)
                ?? (seconds < 0 ? $"--timeout {seconds}: must be 0 or more" : null);
            if (problem != null) return io.BadInput(problem);
            return WithStore(io, store =>
            {
                var nodes = XenVbdToolstack.PathsFor(new XenVbdAttachment((ushort)fe, parse.GetValue(vdev)!, "-") { BackendDomain = (ushort)be, DeviceType = t });
                XenVbdToolstack.RequestDetach(store, nodes);
                var deadline = DateTime.UtcNow.AddSeconds(seconds);
                while (!XenVbdToolstack.IsReleased(store, nodes) && DateTime.UtcNow < deadline) Thread.Sleep(100);
                if (!XenVbdToolstack.IsReleased(store, nodes) && !parse.GetValue(force))
                {
                    io.Err.WriteLine($"blktap: the backend of {nodes.BackendPath} did not reach Closed within {seconds} s (is the guest still using the disk?); rerun with --force to remove the nodes anyway");
                    return CliApp.Failure;
                }
                XenVbdToolstack.RemoveNodes(store, nodes);
                io.Out.WriteLine($"detached device {nodes.DeviceNumber} of domain {fe}");
                return CliApp.Ok;
            });
        });
        return cmd;
    }

    private static int WithStore(CliIo io, Func<XenStore, int> body)
    {
        try
        {
            using var store = new XenStore();
            return body(store);
        }
        catch (XenNotAvailableException ex) { return io.BadInput(ex.Message); }
        catch (XenToolstackException ex) { return io.BadInput(ex.Message); }
        catch (LinuxInteropException ex) // XenInteropException, or a libc call on its behalf (pipe2, epoll)
        {
            io.Err.WriteLine($"blktap: {ex.Message}");
            return CliApp.Failure;
        }
    }
}
