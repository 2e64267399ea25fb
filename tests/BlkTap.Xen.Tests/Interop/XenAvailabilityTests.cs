using System.Runtime.InteropServices;
using BlkTap.Testing;
using BlkTap.Xen;
using NUnit.Framework;

namespace BlkTap.Xen.Tests.Interop;

/// <summary>The Debian Xen libraries load, and opening real-Xen objects without a hypervisor fails clearly.</summary>
[TestFixture]
public class XenAvailabilityTests
{
    private static bool OnXen => File.Exists("/dev/xen/gntdev");

    [TestCase("libxenstore.so.4")]
    [TestCase("libxengnttab.so.1")]
    [TestCase("libxenevtchn.so.1")]
    public void TryLoad_DebianXenLibrary_Succeeds(string soname)
    {
        if (!NativeLibrary.TryLoad(soname, out var handle))
        {
            var message = $"{soname} does not load (apt-get install libxen-dev, which pulls libxenstore4 libxengnttab1 libxenevtchn1)";
            if (Peers.Required) Assert.Fail(message);
            Assert.Ignore(message);
        }
        NativeLibrary.Free(handle);
        Assert.That(handle, Is.Not.EqualTo(nint.Zero));
    }

    private static void RequireNoXen()
    {
        if (OnXen) Assert.Ignore("this machine runs Xen: the no-hypervisor behaviour cannot be observed");
    }

    [Test]
    public void GntdevGrantMapper_WithoutHypervisor_ThrowsXenNotAvailable()
    {
        RequireNoXen();
        var ex = Assert.Throws<XenNotAvailableException>(() => new GntdevGrantMapper().Dispose());
        Assert.That(ex!.Message, Does.StartWith("Xen is not available: /dev/xen/gntdev not found; run on a Xen dom0"));
    }

    [Test]
    public void XenEventChannel_WithoutHypervisor_ThrowsXenNotAvailable()
    {
        if (File.Exists("/dev/xen/evtchn")) Assert.Ignore("/dev/xen/evtchn exists here");
        var ex = Assert.Throws<XenNotAvailableException>(() => XenEventChannel.BindInterdomain(1, 5).Dispose());
        Assert.That(ex!.Message, Does.StartWith("Xen is not available: /dev/xen/evtchn not found; run on a Xen dom0"));
    }

    [Test]
    public void XenStore_WithoutHypervisor_ThrowsXenNotAvailable()
    {
        if (File.Exists("/dev/xen/xenbus") || File.Exists("/run/xenstored/socket") || File.Exists("/var/run/xenstored/socket"))
            Assert.Ignore("xenstore is reachable here");
        var ex = Assert.Throws<XenNotAvailableException>(() => new XenStore().Dispose());
        Assert.That(ex!.Message, Does.StartWith("Xen is not available: /dev/xen/xenbus not found"));
        Assert.That(ex.Message, Does.Contain("run on a Xen dom0"));
    }

    [Test]
    public void XenNotAvailable_IsAPlatformNotSupportedException()
    {
        RequireNoXen();
        Assert.Throws(Is.InstanceOf<PlatformNotSupportedException>(), () => new GntdevGrantMapper().Dispose());
    }
}
