using System.Collections.Concurrent;
using BlkTap.Testing;
using BlkTap.Xen;
using NUnit.Framework;

namespace BlkTap.Xen.Tests.Backend;

/// <summary>The dom0 backend against a real hypervisor (runs only where /dev/xen/gntdev exists, as root).</summary>
[TestFixture]
[Category("RequiresXen")]
public sealed class XenDom0BackendTests
{
    [SetUp]
    public void RequireXen()
    {
        if (!File.Exists("/dev/xen/gntdev")) Assert.Ignore("needs a Xen dom0 (/dev/xen/gntdev)");
    }

    [Test]
    public async Task Serve_HostileDeviceInRealXenStore_DiagnosticAndClosed()
    {
        var diagnostics = new ConcurrentQueue<TapDiagnostic>();
        using var runtime = new TapRuntime(new TapRuntimeOptions { Diagnostics = diagnostics.Enqueue });
        // A private device type so the test never meets a real toolstack's devices.
        using var backend = new XenDom0Backend(runtime, new XenDom0BackendOptions { DeviceType = "vbd3-blktaptest" });
        using var cts = new CancellationTokenSource();
        var run = backend.RunAsync(cts.Token);
        using var store = new XenStore();
        // The frontend is dom0 itself: xen serve sweeps the directories of frontend domains that do not exist.
        var nodes = XenVbdToolstack.PathsFor(0, 0, "vbd3-blktaptest", 51760);
        try
        {
            XenVbdToolstack.WriteAttach(store, new XenVbdAttachment(0, "xvdd", "none") { DeviceType = "vbd3-blktaptest" });
            store.Write(nodes.FrontendPath + "/ring-ref", "not-a-number");
            store.Write(nodes.FrontendPath + "/event-channel", "1");
            store.Write(nodes.FrontendPath + "/state", "3");
            Waits.ForStore(store, () => store.Read(nodes.BackendPath + "/state") == "6", "the backend's Closed", nodes.BackendPath + "/state");
            Assert.That(diagnostics.Any(d => d.Message.Contains("ring-ref 'not-a-number'", StringComparison.Ordinal)), Is.True);
            Assert.That(store.Read(nodes.BackendPath + "/hotplug-error"), Does.Contain("ring-ref 'not-a-number'"));
        }
        finally
        {
            XenVbdToolstack.RemoveNodes(store, nodes);
            cts.Cancel();
            await Waits.For(run, "the backend's end");
        }
    }

    [Test]
    public void Unavailable_OnDom0_IsNull() => Assert.That(XenDom0Backend.Unavailable(), Is.Null);
}
