using BlkTap.Emulator;
using BlkTap.Testing;
using BlkTap.Xen;
using NUnit.Framework;

namespace BlkTap.Xen.Tests.Backend;

/// <summary>
/// The vbd3 directories of a destroyed guest: on real Xen nobody removed them (libxl removes only what it wrote),
/// so <c>xen serve</c> sweeps them. The emulator's DestroyDomain removes <c>/local/domain/&lt;id&gt;</c> and fires
/// <c>@releaseDomain</c> as xl destroy does.
/// </summary>
[TestFixture]
public sealed class DeadFrontendSweeperTests
{
    private const string Root = "/local/domain/0/backend/vbd3";

    private sealed class Served : IDisposable
    {
        private readonly CancellationTokenSource _stop = new();
        private readonly Task _loop;

        public Served()
        {
            Emulator = new XenEmulator();
            Runtime = new TapRuntime();
            var serve = new BlockDeviceHook(_ => new MemoryBlockDevice(1 << 20));
            Runtime.RegisterControlHook("mem", serve);
            Runtime.RegisterRequestHook("mem", serve);
            _loop = Runtime.RunAsync(_stop.Token);
            Backend = new XenbusBlockBackend(Runtime, Emulator.Store, Emulator.GrantMapperFor(0), Emulator.EventChannelFactoryFor(0),
                new XenbusBackendOptions { DeviceType = "vbd3" });
            Sweeper = new DeadFrontendSweeper(Runtime, Emulator.Store, 0, Backend.Root);
        }

        public XenEmulator Emulator { get; }
        public TapRuntime Runtime { get; }
        public XenbusBlockBackend Backend { get; }
        public DeadFrontendSweeper Sweeper { get; }

        public async Task<(EmulatedDomain Guest, BlkFront Front)> AttachGuestAsync(string name)
        {
            var guest = Emulator.CreateDomain(name);
            var nodes = XenVbdToolstack.WriteAttach(Emulator.Store, new XenVbdAttachment(guest.Id, "xvda", $"/images/{name}.img") { DeviceType = "vbd3" });
            var front = new BlkFront(Emulator, guest, nodes.DeviceNumber);
            await Waits.For(front.ConnectAsync(), $"{name}'s disk to connect");
            return (guest, front);
        }

        public void Dispose()
        {
            Sweeper.Dispose();
            Backend.Dispose();
            _stop.Cancel();
            try { _loop.Wait(Waits.Deadline); } catch (AggregateException) { }
            Runtime.Dispose();
            Emulator.Dispose();
        }
    }

    [Test]
    public async Task Sweep_GuestDestroyedWhileServed_ItsBackendDirectoryGoesAndTheOtherGuestKeepsItsDisk()
    {
        using var s = new Served();
        s.Backend.Start();
        s.Sweeper.Start();
        var (dying, dyingFront) = await s.AttachGuestAsync("dying");
        var (living, livingFront) = await s.AttachGuestAsync("living");
        using var _ = dyingFront;
        using var __ = livingFront;
        Assert.That(s.Emulator.Store.Directory(Root), Is.EquivalentTo(new[] { $"{dying.Id}", $"{living.Id}" }));

        s.Emulator.DestroyDomain(dying.Id);

        Waits.ForStore(s.Emulator.Store, () => !s.Emulator.Store.Directory(Root).Contains($"{dying.Id}"), "the dead guest's vbd3 directory to go", Root);
        Waits.Quiesce(s.Emulator, s.Runtime);
        Assert.That(Waits.OnLoop(s.Runtime, () => s.Runtime.Sessions.Count), Is.EqualTo(1), "the dead guest's session closed");
        Assert.That(s.Emulator.Store.Directory(Root), Is.EqualTo(new[] { $"{living.Id}" }));
        var data = new byte[4096];
        new Random(7).NextBytes(data);
        Assert.That(await livingFront.WriteAsync(16, data), Is.EqualTo(BlkifStatus.Okay));
        var back = new byte[4096];
        Assert.That(await livingFront.ReadAsync(16, back), Is.EqualTo(BlkifStatus.Okay));
        Assert.That(back, Is.EqualTo(data), "the living guest's disk still works");
    }

    [Test]
    public void Start_DirectoriesOfDomainsThatNeverLived_AreSweptAtOnceAndOddNamesAreLeftAlone()
    {
        using var s = new Served();
        s.Emulator.Store.Write($"{Root}/77/51712/frontend", "/local/domain/77/device/vbd/51712");
        s.Emulator.Store.Write($"{Root}/not-a-domain/1/state", "1");
        s.Emulator.Store.Write($"{Root}/0/5/state", "1");

        s.Sweeper.Start();

        Waits.ForStore(s.Emulator.Store, () => !s.Emulator.Store.Directory(Root).Contains("77"), "the stale directory of domain 77 to go", Root);
        Assert.That(s.Emulator.Store.Directory(Root), Is.EquivalentTo(new[] { "not-a-domain", "0" }),
            "a name that is not a domain id, and the backend's own domain, are not a dead guest");
    }

    [Test]
    public void Sweep_BackendDomainItselfUnreadable_RemovesNothing()
    {
        using var s = new Served();
        s.Emulator.Store.Write("/other/9/backend/vbd3/77/51712/state", "1");
        using var lone = new DeadFrontendSweeper(s.Runtime, s.Emulator.Store, 9, "/other/9/backend/vbd3");

        lone.Sweep();

        Assert.That(s.Emulator.Store.Directory("/other/9/backend/vbd3"), Is.EqualTo(new[] { "77" }), "without /local/domain/9 nothing is judged dead");
    }
}
