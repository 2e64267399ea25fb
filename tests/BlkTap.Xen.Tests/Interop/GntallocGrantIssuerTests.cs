using BlkTap.Xen;
using NUnit.Framework;

namespace BlkTap.Xen.Tests.Interop;

/// <summary>
/// <see cref="GntallocGrantIssuer"/> where no hypervisor runs: failures are a null plus a reason naming the device
/// and the module, caller bugs throw. (Granting for real is in <c>XenFrontendRequiresXenTests</c>.)
/// </summary>
[TestFixture]
public class GntallocGrantIssuerTests
{
    private const string Device = "/dev/xen/gntalloc";

    private static void RequireNoGntalloc()
    {
        if (File.Exists(Device)) Assert.Ignore($"{Device} exists here: its absence cannot be observed");
    }

    [Test]
    public void Grant_WithoutGntallocDevice_ReturnsNullNamingDeviceAndModule()
    {
        RequireNoGntalloc();
        using var issuer = new GntallocGrantIssuer();
        var pages = issuer.Grant(0, 3, writable: true, out var error);
        Assert.That(pages, Is.Null);
        Assert.That(error, Does.Contain(Device).And.Contain("xen-gntalloc"));
    }

    [Test]
    public void Grant_WithoutGntallocDeviceTwice_ReturnsTheSameReason()
    {
        RequireNoGntalloc();
        using var issuer = new GntallocGrantIssuer();
        Assert.That(issuer.Grant(1, 1, writable: false, out var first), Is.Null);
        Assert.That(issuer.Grant(1, 1, writable: false, out var second), Is.Null);
        Assert.That(second, Is.EqualTo(first));
    }

    [Test]
    public void Open_WithoutGntallocDevice_ThrowsXenNotAvailable()
    {
        RequireNoGntalloc();
        var ex = Assert.Throws<XenNotAvailableException>(() => GntallocGrantIssuer.Open().Dispose());
        Assert.That(ex!.Message, Does.StartWith($"Xen is not available: {Device} not found"));
        Assert.That(ex.Message, Does.Contain("xen-gntalloc"));
    }

    [TestCase(0)]
    [TestCase(-1)]
    [TestCase(GntallocGrantIssuer.MaxPagesPerGrant + 1)]
    public void Grant_PageCountOutOfRange_ThrowsArgumentOutOfRange(int pageCount)
    {
        using var issuer = new GntallocGrantIssuer();
        Assert.Throws<ArgumentOutOfRangeException>(() => issuer.Grant(0, pageCount, writable: true, out _));
    }

    [Test]
    public void Grant_AfterDispose_ThrowsObjectDisposed()
    {
        var issuer = new GntallocGrantIssuer();
        issuer.Dispose();
        issuer.Dispose();
        Assert.Throws<ObjectDisposedException>(() => issuer.Grant(0, 1, writable: true, out _));
    }
}
