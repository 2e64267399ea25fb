using BlkTap.Xen;
using NUnit.Framework;

namespace BlkTap.Xen.Tests.Interop;

/// <summary><see cref="XenFrontendPlatform"/> where no hypervisor runs, and its <c>domid</c> parsing.</summary>
[TestFixture]
public class XenFrontendPlatformTests
{
    private static void RequireNoXen()
    {
        if (XenFrontendPlatform.Unavailable() is null) Assert.Ignore("this machine can run a Xen frontend: its absence cannot be observed");
    }

    [Test]
    public void Unavailable_WithoutXen_NamesTheMissingPiece()
    {
        RequireNoXen();
        var problem = XenFrontendPlatform.Unavailable();
        Assert.That(problem, Does.StartWith("Xen is not available: "));
        Assert.That(problem, Does.Contain("/dev/xen/").Or.Contain("xenstored").Or.Contain(".so."));
    }

    [Test]
    public void Unavailable_WithXenStoreButNoGntalloc_NamesTheModule()
    {
        bool xenstore = File.Exists("/dev/xen/xenbus") || File.Exists("/run/xenstored/socket") || File.Exists("/var/run/xenstored/socket");
        if (!xenstore || File.Exists("/dev/xen/gntalloc")) Assert.Ignore("needs xenstore without /dev/xen/gntalloc");
        Assert.That(XenFrontendPlatform.Unavailable(), Does.Contain("/dev/xen/gntalloc").And.Contain("xen-gntalloc"));
    }

    [Test]
    public void Open_WithoutXen_ThrowsXenNotAvailableWithTheSameMessage()
    {
        RequireNoXen();
        var ex = Assert.Throws<XenNotAvailableException>(() => XenFrontendPlatform.Open(out _));
        Assert.That(ex!.Message, Is.EqualTo(XenFrontendPlatform.Unavailable()));
    }

    [TestCase(null, 0)]
    [TestCase("0", 0)]
    [TestCase("7", 7)]
    [TestCase("65535", 65535)]
    [TestCase("12\n", 12)]
    public void ParseDomainId_AbsentOrDecimal_ReturnsTheId(string? value, int expected) =>
        Assert.That(XenFrontendPlatform.ParseDomainId(value), Is.EqualTo((ushort)expected));

    [TestCase("")]
    [TestCase("-1")]
    [TestCase("65536")]
    [TestCase("0x10")]
    [TestCase("Domain-0")]
    public void ParseDomainId_NotADomainId_ThrowsInvalidData(string value) =>
        Assert.Throws<InvalidDataException>(() => XenFrontendPlatform.ParseDomainId(value));
}
