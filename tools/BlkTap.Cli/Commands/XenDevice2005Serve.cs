using BlkTap.Chains;
using BlkTap.Linux;
using BlkTap.Xen;

namespace BlkTap.Cli.Commands;

/// <summary>
/// <c>blktap xen serve --device2005</c>: the legacy path. Serves the chain through the 2005 <c>/dev/blktap</c>
/// driver (the 2005 blktap's kernel interface) in INTERPOSE mode until cancelled, printing control events and
/// diagnostics to the console. See docs/xen-deploy.md, "The 2005 /dev/blktap device (legacy)".
/// </summary>
/// <remarks>Threading: one call at a time, from the command's action.</remarks>
internal static class XenDevice2005Serve
{
    public static async Task<int> RunAsync(CliIo io, IReadOnlyList<TapSpec> specs, TapRegistry registry, CancellationToken ct)
    {
        var taps = registry.Build(specs, new TapContext { Output = io.Out });
        try
        {
            using var runtime = new TapRuntime(new TapRuntimeOptions
            {
                Name = "blktap2005",
                Diagnostics = d => io.Err.WriteLine($"blktap: {d.Level}: {(d.Session != null ? d.Session.Name + ": " : "")}{d.Message}"),
            });
            TapChain.Register(runtime, taps);
            runtime.RegisterControlHook("log", Hook.Control(e =>
                io.Out.WriteLine($"{e.Kind} {e.Session.Name} sectors={e.Session.Sectors}{(e.Reason == null ? "" : " (" + e.Reason + ")")}")));
            BlktapDevice2005 device;
            try
            {
                device = BlktapDevice2005.Open(runtime);
                device.Start();
            }
            catch (XenNotAvailableException ex)
            {
                return io.BadInput(ex.Message);
            }
            catch (LinuxInteropException ex) // XenInteropException, or a libc call on its behalf (pipe2, epoll)
            {
                io.Err.WriteLine($"blktap: {ex.Message}");
                return CliApp.Failure;
            }
            using (device)
            {
                io.Out.WriteLine($"serving {device.Options.DevicePath} (2005 driver, mode {device.Options.Mode}) with chain {string.Join(" -> ", specs.Select(s => s.Text))}");
                try { await runtime.RunAsync(ct); }
                catch (OperationCanceledException) { }
            }
            return device.FaultReason == null ? CliApp.Ok : CliApp.Failure;
        }
        finally
        {
            taps.Dispose();
        }
    }
}
