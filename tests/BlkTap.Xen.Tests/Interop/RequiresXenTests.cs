using BlkTap.Testing;
using BlkTap.Xen;
using NUnit.Framework;

namespace BlkTap.Xen.Tests.Interop;

/// <summary>Checks against a live hypervisor: run only in a Xen dom0 (where /dev/xen/gntdev exists), as root.</summary>
[TestFixture]
[Category("RequiresXen")]
public class RequiresXenTests
{
    [SetUp]
    public void RequireXen()
    {
        if (!File.Exists("/dev/xen/gntdev")) Assert.Ignore("needs a Xen dom0: /dev/xen/gntdev not found");
    }

    [Test]
    public void XenStore_ReadDom0Name_IsDomain0()
    {
        using var store = new XenStore();
        Assert.That(store.Read("/local/domain/0/name"), Is.EqualTo("Domain-0"));
        Assert.That(store.Read("/local/domain/0/blktap-test-does-not-exist"), Is.Null);
    }

    [Test]
    public void XenStore_WriteWatchRemove_RoundTripsAndFiresOnSet()
    {
        using var store = new XenStore();
        const string path = "/local/domain/0/blktap-test";
        store.Write(path + "/a", "héllo");
        Assert.That(store.Read(path + "/a"), Is.EqualTo("héllo"));
        Assert.That(store.Directory(path), Is.EquivalentTo(new[] { "a" }));
        using var fired = new SemaphoreSlim(0);
        using (store.Watch(path, _ => fired.Release()))
            Assert.That(fired.Wait(Waits.Deadline), Is.True, "a watch fires once when set");
        int n = store.Transact(tx => { tx.Write(path + "/b", "1"); return tx.Directory(path).Count; });
        Assert.That(n, Is.EqualTo(2));
        Assert.That(store.Remove(path), Is.True);
        Assert.That(store.Remove(path), Is.False);
    }

    [Test]
    public void GntdevGrantMapper_UngrantedReference_ReturnsStatusNotException()
    {
        using var mapper = new GntdevGrantMapper();
        Span<nint> pages = stackalloc nint[1];
        // Domain 0x7FEF (DOMID_FIRST_RESERVED - 1) never exists.
        var status = mapper.Map(0x7FEF, [12345u], writable: false, pages, out _);
        Assert.That(status, Is.Not.EqualTo(GrantStatus.Okay));
        Assert.That(mapper.MappingCount, Is.EqualTo(0));
    }

    [Test]
    public void XenEventChannel_BindToMissingDomain_ThrowsInteropException()
    {
        var ex = Assert.Throws<XenInteropException>(() => XenEventChannel.BindInterdomain(0x7FEF, 1).Dispose());
        Assert.That(ex!.Call, Is.EqualTo("xenevtchn_bind_interdomain"));
    }
}
