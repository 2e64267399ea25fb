using System.Runtime.InteropServices;
using BlkTap.Testing;
using BlkTap.Xen;
using NUnit.Framework;

namespace BlkTap.Xen.Tests.Interop;

/// <summary>
/// The frontend's side against a live hypervisor: gntalloc grants that dom0 maps back through gntdev, and an unbound
/// event channel that a second channel binds to. Runs only in a Xen dom0 (where /dev/xen/gntdev exists), as root.
/// </summary>
[TestFixture]
[Category("RequiresXen")]
public class XenFrontendRequiresXenTests
{
    private const int PageSize = 4096;

    [SetUp]
    public void RequireXen()
    {
        if (!File.Exists("/dev/xen/gntdev")) Assert.Ignore("needs a Xen dom0: /dev/xen/gntdev not found");
        if (!File.Exists("/dev/xen/gntalloc")) Assert.Ignore("needs /dev/xen/gntalloc: modprobe xen-gntalloc");
    }

    [Test]
    public void Grant_ThreeWritablePagesToDom0_MapBackThroughGntdevWithTheSameBytes()
    {
        using var issuer = GntallocGrantIssuer.Open();
        using var granted = issuer.Grant(0, 3, writable: true, out var error);
        Assert.That(granted, Is.Not.Null, error);
        Assert.That(granted!.PageCount, Is.EqualTo(3));
        var refs = Enumerable.Range(0, 3).Select(granted.Reference).ToArray();
        Assert.That(refs, Is.Unique, "each page has its own grant reference");
        Assert.That((long)granted.Address % PageSize, Is.EqualTo(0L), "page-aligned");

        var local = new byte[3 * PageSize];
        Marshal.Copy(granted.Address, local, 0, local.Length);
        Assert.That(local, Is.All.EqualTo(0), "gntalloc pages start zeroed");
        for (int i = 0; i < local.Length; i++) local[i] = (byte)(i * 7 + i / PageSize);
        Marshal.Copy(local, 0, granted.Address, local.Length);

        using var mapper = new GntdevGrantMapper();
        var pages = new nint[3];
        var status = mapper.Map(0, refs, writable: true, pages, out long handle);
        Assert.That(status, Is.EqualTo(GrantStatus.Okay));
        try
        {
            for (int p = 0; p < 3; p++)
            {
                var seen = new byte[PageSize];
                Marshal.Copy(pages[p], seen, 0, PageSize);
                Assert.That(seen, Is.EqualTo(local.AsSpan(p * PageSize, PageSize).ToArray()), $"page {p} through gntdev");
            }
            // And back: a write through the grant is seen by the granting side.
            Marshal.WriteByte(pages[2], 100, 0xA5);
            Assert.That(Marshal.ReadByte(granted.Address, 2 * PageSize + 100), Is.EqualTo(0xA5));
        }
        finally
        {
            mapper.Unmap(handle);
        }
        granted.Dispose();
        granted.Dispose();
    }

    [Test]
    public void Grant_ReadOnlyToDom0_MapsReadOnlyButNotWritable()
    {
        using var issuer = new GntallocGrantIssuer();
        using var granted = issuer.Grant(0, 1, writable: false, out var error);
        Assert.That(granted, Is.Not.Null, error);
        using var mapper = new GntdevGrantMapper();
        var page = new nint[1];
        Assert.That(mapper.Map(0, [granted!.Reference(0)], writable: true, page, out _), Is.Not.EqualTo(GrantStatus.Okay));
        Assert.That(mapper.Map(0, [granted.Reference(0)], writable: false, page, out long handle), Is.EqualTo(GrantStatus.Okay));
        mapper.Unmap(handle);
    }

    [Test]
    public void AllocateUnbound_Dom0_BoundPeerAndOfferingSideNotifyEachOther()
    {
        using var offered = XenEventChannel.AllocateUnbound(0);
        Assert.That(offered.RemotePort, Is.EqualTo(0u));
        using var bound = XenEventChannel.BindInterdomain(0, offered.LocalPort);
        Assert.That(bound.LocalPort, Is.Not.EqualTo(offered.LocalPort));

        using var atOffered = new SemaphoreSlim(0);
        using var atBound = new SemaphoreSlim(0);
        offered.SetHandler(() => atOffered.Release());
        bound.SetHandler(() => atBound.Release());

        bound.Notify();
        Assert.That(atOffered.Wait(Waits.Deadline), Is.True, "the offering side's handler ran after the bound side notified");
        offered.Notify();
        Assert.That(atBound.Wait(Waits.Deadline), Is.True, "the bound side's handler ran after the offering side notified");
        Assert.That(offered.PollFailure, Is.Null);
        Assert.That(bound.PollFailure, Is.Null);
    }

    [Test]
    public void Open_OnDom0_DomainZeroAndItsFactoriesWork()
    {
        var platform = XenFrontendPlatform.Open(out var lifetime);
        using (lifetime)
        {
            Assert.That(platform.DomainId, Is.EqualTo((ushort)0));
            Assert.That(platform.Store.Read("/local/domain/0/name"), Is.EqualTo("Domain-0"));
            using var channel = platform.EventChannels.AllocateUnbound(0, out var channelError);
            Assert.That(channel, Is.Not.Null, channelError);
            using var pages = platform.Grants.Grant(0, 1, writable: true, out var grantError);
            Assert.That(pages, Is.Not.Null, grantError);
        }
        lifetime.Dispose();
    }
}
