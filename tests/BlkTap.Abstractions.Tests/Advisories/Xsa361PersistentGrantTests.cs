using BlkTap.Testing.Advisories;
using BlkTap.Testing;
using NUnit.Framework;

namespace BlkTap.Abstractions.Tests.Advisories;

/// <summary>
/// XSA-361/362/365 with persistent grants negotiated: a request where some pages map (and are kept, as
/// feature-persistent allows) and one does not, or where gntdev refuses a map. The request is answered ERROR without
/// writing into the guest; kept grants stay mapped only until the guest disconnects, then every mapping is gone and
/// every grant revocable; the session lives on in between.
/// </summary>
public class Xsa361PersistentGrantTests
{
    [TestCase(false)]
    [TestCase(true)]
    public async Task RingSession_Xsa361WithPersistentGrants_PartialMapAnsweredErrorAndNothingLeftAtDisconnect(bool mapRefused)
    {
        InterceptingGrantMapper? mapper = null;
        await using var rig = await AdvisoryRig.StartAsync(wrapMapper: m => mapper = new InterceptingGrantMapper(m), persistentGrants: true, queues: 2);
        var guest = rig.Frontends[0];
        var honest = rig.Frontends[1];
        Assert.That(guest.UsesPersistentGrants, Is.True);
        Assert.That(guest.QueueCount, Is.EqualTo(Math.Min(2, Environment.ProcessorCount)));
        int baseline = rig.Emulator.MappingCount; // the guests' rings
        var pages = Enumerable.Range(0, 11).Select(_ => AdvisoryRig.GrantPage(guest)).ToArray();
        foreach (var (page, _) in pages) guest.Domain.GetPage(page).Fill(0x5A);
        var segments = pages.Select(p => new BlkifSegment(p.Ref, 0, 7)).ToArray();
        if (mapRefused) mapper!.Fail = (refs, _) => refs.Contains(pages[5].Ref) ? GrantStatus.Failed : null; // gntdev out of slots
        else segments[5] = new BlkifSegment(pages[^1].Ref + 1000, 0, 7);                                      // never granted

        var response = await Waits.For(guest.SubmitRaw(AdvisoryRig.Raw(AdvisoryRig.Rw(BlkifOperation.Read, 0, segments), guest.Layout)), "the response");
        Assert.That(response.Status, Is.EqualTo(BlkifStatus.Error));
        Waits.Quiesce(rig.Emulator, rig.Runtime);
        Assert.That(rig.Runtime.InFlight, Is.Zero);
        foreach (var (page, _) in pages) Assert.That(guest.Domain.GetPage(page).ToArray(), Is.All.EqualTo(0x5A), "a failed read wrote into the guest");
        Assert.That(rig.Crashes, Is.Empty);
        Assert.That(guest.IsBroken, Is.False);

        // The session lives on, and the good pages are served from the kept mappings without a new map.
        mapper!.Fail = null;
        int maps = rig.Emulator.MappingCount;
        var good = AdvisoryRig.Rw(BlkifOperation.Write, 0, pages.Take(3).Select(p => new BlkifSegment(p.Ref, 0, 7)).ToArray());
        Assert.That((await Waits.For(guest.SubmitRaw(AdvisoryRig.Raw(good, guest.Layout)), "a good request")).Status, Is.EqualTo(BlkifStatus.Okay));
        Waits.Quiesce(rig.Emulator, rig.Runtime);
        Assert.That(rig.Emulator.MappingCount, Is.EqualTo(maps), "the good request's pages were already kept");
        var back = new byte[4096];
        Assert.That(await Waits.For(honest.ReadAsync(0, back), "the honest guest's read"), Is.EqualTo(BlkifStatus.Okay));
        Assert.That(back, Is.All.EqualTo(0x5A), "the good write landed");

        // At disconnect every kept grant goes: nothing of the guest stays mapped, every grant can be taken back.
        await Waits.For(guest.DisconnectAsync(), "the guest's disconnect");
        Waits.ForStore(rig.Emulator.Store, () => Waits.OnLoop(rig.Runtime, () => rig.Backend.Sessions.Count) == 1, "the backend closing the guest's session");
        Waits.Quiesce(rig.Emulator, rig.Runtime);
        int honestKept = Waits.OnLoop(rig.Runtime, () => rig.Backend.Sessions.Values.Sum(s => s.PersistentGrantCount));
        Assert.That(honestKept, Is.EqualTo(1), "the honest guest's one read page is kept");
        Assert.That(rig.Emulator.MappingCount, Is.EqualTo(baseline - guest.QueueCount + honestKept), "only the honest guest's rings and kept page stay mapped");
        foreach (var (_, gref) in pages)
            Assert.That(guest.Domain.Grants.EndAccess(gref), Is.True, $"grant {gref} cannot be revoked: a mapping leaked");
    }
}
