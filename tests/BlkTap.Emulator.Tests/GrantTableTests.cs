using BlkTap.Emulator;
using BlkTap.Testing;
using FsCheck;
using NUnit.Framework;

namespace BlkTap.Emulator.Tests;

public class GrantTableTests
{
    [Test]
    public void Map_GrantedPage_ReturnsTheRealPageZeroCopy()
    {
        using var emu = XenEmulator.CreateDeterministic(1);
        var guest = emu.CreateDomain("guest");
        nint page = guest.AllocatePages();
        uint gref = guest.Grants.GrantAccess(0, page, readOnly: false);
        var pages = new nint[1];

        var status = emu.GrantMapperFor(0).Map(guest.Id, new[] { gref }, writable: true, pages, out long handle);

        Assert.That(status, Is.EqualTo(GrantStatus.Okay));
        Assert.That(pages[0], Is.EqualTo(page));
        Assert.That((long)pages[0] % 4096, Is.EqualTo(0L));
        unsafe { *(byte*)(pages[0] + 100) = 0xAB; }
        Assert.That(guest.GetPage(page)[100], Is.EqualTo(0xAB));
        Assert.That(guest.Grants.MapCount(gref), Is.EqualTo(1));
        emu.GrantMapperFor(0).Unmap(handle);
        Assert.That(guest.Grants.MapCount(gref), Is.EqualTo(0));
    }

    [Test]
    public void Map_NeverGrantedRef_ReturnsNotGranted()
    {
        using var emu = XenEmulator.CreateDeterministic(1);
        var guest = emu.CreateDomain("guest");
        var status = emu.GrantMapperFor(0).Map(guest.Id, new uint[] { 1234 }, false, new nint[1], out _);
        Assert.That(status, Is.EqualTo(GrantStatus.NotGranted));
    }

    [Test]
    public void Map_RevokedRef_ReturnsNotGranted()
    {
        using var emu = XenEmulator.CreateDeterministic(1);
        var guest = emu.CreateDomain("guest");
        uint gref = guest.Grants.GrantAccess(0, guest.AllocatePages(), readOnly: false);
        Assert.That(guest.Grants.EndAccess(gref), Is.True);
        var status = emu.GrantMapperFor(0).Map(guest.Id, new[] { gref }, false, new nint[1], out _);
        Assert.That(status, Is.EqualTo(GrantStatus.NotGranted));
    }

    [Test]
    public void Map_RefGrantedToAnotherDomain_ReturnsNotGranted()
    {
        using var emu = XenEmulator.CreateDeterministic(1);
        var guest = emu.CreateDomain("guest");
        var other = emu.CreateDomain("other");
        uint gref = guest.Grants.GrantAccess(other.Id, guest.AllocatePages(), readOnly: false);
        Assert.That(emu.GrantMapperFor(0).Map(guest.Id, new[] { gref }, false, new nint[1], out _), Is.EqualTo(GrantStatus.NotGranted));
        Assert.That(emu.GrantMapperFor(other.Id).Map(guest.Id, new[] { gref }, false, new nint[1], out _), Is.EqualTo(GrantStatus.Okay));
    }

    [Test]
    public void Map_ReadOnlyGrantAskedWritable_ReturnsReadOnly()
    {
        using var emu = XenEmulator.CreateDeterministic(1);
        var guest = emu.CreateDomain("guest");
        uint gref = guest.Grants.GrantAccess(0, guest.AllocatePages(), readOnly: true);
        var mapper = emu.GrantMapperFor(0);
        Assert.That(mapper.Map(guest.Id, new[] { gref }, writable: true, new nint[1], out _), Is.EqualTo(GrantStatus.ReadOnly));
        Assert.That(mapper.Map(guest.Id, new[] { gref }, writable: false, new nint[1], out _), Is.EqualTo(GrantStatus.Okay));
    }

    [Test]
    public void Map_OneBadRefAmongGoodOnes_MapsNothing()
    {
        using var emu = XenEmulator.CreateDeterministic(1);
        var guest = emu.CreateDomain("guest");
        uint a = guest.Grants.GrantAccess(0, guest.AllocatePages(), false);
        uint b = guest.Grants.GrantAccess(0, guest.AllocatePages(), false);
        var status = emu.GrantMapperFor(0).Map(guest.Id, new[] { a, 999u, b }, false, new nint[3], out _);
        Assert.That(status, Is.EqualTo(GrantStatus.NotGranted));
        Assert.That(guest.Grants.MapCount(a) + guest.Grants.MapCount(b), Is.EqualTo(0));
        Assert.That(emu.MappingCount, Is.EqualTo(0));
    }

    [Test]
    public void EndAccess_WhileMapped_ReturnsFalseUntilUnmapped()
    {
        using var emu = XenEmulator.CreateDeterministic(1);
        var guest = emu.CreateDomain("guest");
        uint gref = guest.Grants.GrantAccess(0, guest.AllocatePages(), false);
        var mapper = emu.GrantMapperFor(0);
        Assert.That(mapper.Map(guest.Id, new[] { gref }, false, new nint[1], out long handle), Is.EqualTo(GrantStatus.Okay));

        Assert.That(guest.Grants.EndAccess(gref), Is.False);
        Assert.That(guest.Grants.IsGranted(gref), Is.True, "a failed EndAccess leaves the grant in place");
        mapper.Unmap(handle);
        mapper.Unmap(handle); // twice is a no-op
        Assert.That(guest.Grants.EndAccess(gref), Is.True);
    }

    [Test]
    public void EndAccess_UnknownRef_ThrowsNamingTheRef()
    {
        using var emu = XenEmulator.CreateDeterministic(1);
        var guest = emu.CreateDomain("guest");
        var e = Assert.Throws<ArgumentException>(() => guest.Grants.EndAccess(77));
        Assert.That(e!.Message, Does.Contain("77"));
    }

    [Test]
    public void GrantAccess_AddressNotAPageOfTheDomain_Throws()
    {
        using var emu = XenEmulator.CreateDeterministic(1);
        var guest = emu.CreateDomain("guest");
        nint page = guest.AllocatePages();
        Assert.Throws<ArgumentException>(() => guest.Grants.GrantAccess(0, page + 512, false));
        Assert.Throws<ArgumentException>(() => emu.Dom0.Grants.GrantAccess(guest.Id, page, false));
    }

    [Test]
    public void DestroyDomain_NewMaps_ReturnNoSuchDomain()
    {
        using var emu = XenEmulator.CreateDeterministic(1);
        var guest = emu.CreateDomain("guest");
        uint gref = guest.Grants.GrantAccess(0, guest.AllocatePages(), false);
        Assert.That(emu.DestroyDomain(guest.Id), Is.True);
        Assert.That(guest.IsAlive, Is.False);
        Assert.That(emu.GrantMapperFor(0).Map(guest.Id, new[] { gref }, false, new nint[1], out _), Is.EqualTo(GrantStatus.NoSuchDomain));
        Assert.That(emu.Store.Read($"/local/domain/{guest.Id}/name"), Is.Null);
    }

    [Test]
    public void DestroyDomain_WhilePageMapped_DefersTheFreeUntilUnmap()
    {
        using var emu = XenEmulator.CreateDeterministic(1);
        long before = emu.LivePageCount;
        var guest = emu.CreateDomain("guest");
        nint page = guest.AllocatePages();
        guest.AllocatePages(3);
        uint gref = guest.Grants.GrantAccess(0, page, false);
        var pages = new nint[1];
        var mapper = emu.GrantMapperFor(0);
        Assert.That(mapper.Map(guest.Id, new[] { gref }, true, pages, out long handle), Is.EqualTo(GrantStatus.Okay));

        emu.DestroyDomain(guest.Id);

        Assert.That(emu.LivePageCount, Is.EqualTo(before + 1), "the unmapped allocation is freed, the mapped page is not");
        unsafe { *(long*)pages[0] = 42; } // still valid memory
        mapper.Unmap(handle);
        Assert.That(emu.LivePageCount, Is.EqualTo(before));
    }

    [Test]
    public void FreePages_WhileMapped_RevokesNewMapsAndDefersFree()
    {
        using var emu = XenEmulator.CreateDeterministic(1);
        var guest = emu.CreateDomain("guest");
        nint page = guest.AllocatePages();
        uint gref = guest.Grants.GrantAccess(0, page, false);
        var mapper = emu.GrantMapperFor(0);
        Assert.That(mapper.Map(guest.Id, new[] { gref }, false, new nint[1], out long handle), Is.EqualTo(GrantStatus.Okay));
        long live = emu.LivePageCount;

        guest.FreePages(page);

        Assert.That(mapper.Map(guest.Id, new[] { gref }, false, new nint[1], out _), Is.EqualTo(GrantStatus.NotGranted));
        Assert.That(emu.LivePageCount, Is.EqualTo(live));
        mapper.Unmap(handle);
        Assert.That(emu.LivePageCount, Is.EqualTo(live - 1));
    }

    /// <summary>Every combination of grantee, revocation and access mode gives the status the rules say.</summary>
    [FsCheck.NUnit.Property(MaxTest = 200)]
    public void Map_AnyGrantState_StatusFollowsTheRules(bool toMapper, bool revoked, bool readOnly, bool writable, bool dead)
    {
        using var emu = XenEmulator.CreateDeterministic(1);
        var guest = emu.CreateDomain("guest");
        var other = emu.CreateDomain("other");
        uint gref = guest.Grants.GrantAccess(toMapper ? (ushort)0 : other.Id, guest.AllocatePages(), readOnly);
        if (revoked) guest.Grants.EndAccess(gref);
        if (dead) emu.DestroyDomain(guest.Id);

        var status = emu.GrantMapperFor(0).Map(guest.Id, new[] { gref }, writable, new nint[1], out long handle);

        var expected = dead ? GrantStatus.NoSuchDomain
            : !toMapper || revoked ? GrantStatus.NotGranted
            : readOnly && writable ? GrantStatus.ReadOnly
            : GrantStatus.Okay;
        Assert.That(status, Is.EqualTo(expected));
        Assert.That(emu.MappingCount, Is.EqualTo(status == GrantStatus.Okay ? 1 : 0));
    }

    [Test]
    public void Map_ReadOnly_ReturnsWriteProtectedCopyHoldingTheGuestsData()
    {
        using var emu = XenEmulator.CreateDeterministic(1);
        var guest = emu.CreateDomain("guest");
        nint page = guest.AllocatePages();
        new Random(5).NextBytes(guest.GetPage(page));
        var expected = guest.GetPage(page).ToArray();
        uint gref = guest.Grants.GrantAccess(0, page, readOnly: true);
        var pages = new nint[1];

        var status = emu.GrantMapperFor(0).Map(guest.Id, new[] { gref }, writable: false, pages, out long handle);

        Assert.That(status, Is.EqualTo(GrantStatus.Okay));
        Assert.That(pages[0], Is.Not.EqualTo(page), "a read-only grant maps a separate, write-protected view");
        Assert.That((long)pages[0] % 4096, Is.EqualTo(0L));
        unsafe { Assert.That(new ReadOnlySpan<byte>((void*)pages[0], 4096).SequenceEqual(expected), Is.True); }
        Assert.That(guest.Grants.MapCount(gref), Is.EqualTo(1));
        emu.GrantMapperFor(0).Unmap(handle);
        Assert.That(guest.Grants.MapCount(gref), Is.EqualTo(0));
    }

    [Test]
    public void Map_ReadOnlyWithProtectionOff_ReturnsTheGuestPage()
    {
        using var emu = new XenEmulator(new XenEmulatorOptions { Mode = SchedulerMode.Deterministic, ProtectReadOnlyGrants = false });
        var guest = emu.CreateDomain("guest");
        nint page = guest.AllocatePages();
        uint gref = guest.Grants.GrantAccess(0, page, readOnly: true);
        var pages = new nint[1];
        Assert.That(emu.GrantMapperFor(0).Map(guest.Id, new[] { gref }, false, pages, out _), Is.EqualTo(GrantStatus.Okay));
        Assert.That(pages[0], Is.EqualTo(page));
    }

    /// <summary>
    /// Real Xen maps a write's data read-only; a backend writing into it dies with SIGSEGV (the crypt tap did, in the
    /// Xen lab). The emulator fails the same way: a child process writing through a read-only mapping is killed by
    /// the fault, and the same child with the protection off writes and exits 0.
    /// </summary>
    [TestCase(true)]
    [TestCase(false)]
    public void WriteThroughReadOnlyMapping_Protected_KillsTheBackendLikeXen(bool protect)
    {
        var r = Peers.Run("dotnet", [CrashChild.Dll(), "write-readonly-grant", protect ? "protected" : "unprotected"], TimeSpan.FromMinutes(2));
        Assert.That(r.StdOut, Does.Contain("mapped 5a"), r.StdOut + r.StdErr);
        if (protect)
        {
            Assert.That(r.ExitCode, Is.Not.EqualTo(0), r.StdOut + r.StdErr);
            Assert.That(r.StdOut, Does.Not.Contain("wrote"));
            Assert.That(r.StdErr, Does.Contain("AccessViolationException"));
        }
        else
        {
            Assert.That(r.ExitCode, Is.EqualTo(0), r.StdOut + r.StdErr);
            Assert.That(r.StdOut, Does.Contain("wrote"));
        }
    }
}
