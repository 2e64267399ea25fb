using System.Collections.Concurrent;
using BlkTap.Emulator;
using BlkTap.Testing;
using BlkTap.Xen;
using NUnit.Framework;

namespace BlkTap.Xen.Tests.Backend;

/// <summary><c>blktap xen attach/detach</c>'s node writer against the emulator's xenstore, met by a real blkfront and the vbd3 backend.</summary>
[TestFixture]
public sealed class XenToolstackTests
{
    [Test]
    public async Task AttachThenDetach_Vbd3Backend_GuestDiskWorksAndGoesAway()
    {
        using var emulator = new XenEmulator();
        var images = new ConcurrentQueue<string?>();
        using var runtime = new TapRuntime();
        var serve = new BlockDeviceHook(s => { images.Enqueue(s.ImageId); return new MemoryBlockDevice(1 << 20); });
        runtime.RegisterControlHook("mem", serve);
        runtime.RegisterRequestHook("mem", serve);
        using var cts = new CancellationTokenSource();
        var loop = runtime.RunAsync(cts.Token);
        using var backend = new XenbusBlockBackend(runtime, emulator.Store, emulator.GrantMapperFor(0), emulator.EventChannelFactoryFor(0),
            new XenbusBackendOptions { DeviceType = "vbd3" });
        backend.Start();
        var guest = emulator.CreateDomain("guest");

        var permissions = new List<(string Path, XenStorePermission[] Perms)>();
        var nodes = XenVbdToolstack.WriteAttach(emulator.Store, new XenVbdAttachment(guest.Id, "xvdb", "/images/guest.img") { DeviceType = "vbd3" },
            (p, perms) => permissions.Add((p, perms)));

        Assert.Multiple(() =>
        {
            Assert.That(nodes.DeviceNumber, Is.EqualTo(51728));
            Assert.That(nodes.FrontendPath, Is.EqualTo($"/local/domain/{guest.Id}/device/vbd/51728"));
            Assert.That(nodes.BackendPath, Is.EqualTo($"/local/domain/0/backend/vbd3/{guest.Id}/51728"));
            Assert.That(emulator.Store.Read(nodes.FrontendPath + "/backend"), Is.EqualTo(nodes.BackendPath));
            Assert.That(emulator.Store.Read(nodes.BackendPath + "/frontend"), Is.EqualTo(nodes.FrontendPath));
            Assert.That(emulator.Store.Read(nodes.BackendPath + "/mode"), Is.EqualTo("w"));
            Assert.That(permissions, Has.Count.EqualTo(2));
            Assert.That(permissions.Single(p => p.Path == nodes.FrontendPath).Perms,
                Is.EqualTo(new[] { new XenStorePermission(guest.Id, XenStoreAccess.None), new XenStorePermission(0, XenStoreAccess.Read) }));
            Assert.That(permissions.Single(p => p.Path == nodes.BackendPath).Perms,
                Is.EqualTo(new[] { new XenStorePermission(0, XenStoreAccess.None), new XenStorePermission(guest.Id, XenStoreAccess.Read) }));
        });

        var front = new BlkFront(emulator, guest, nodes.DeviceNumber);
        await Waits.For(front.ConnectAsync(), "the handshake");
        var data = new byte[4096];
        Random.Shared.NextBytes(data);
        Assert.That(await front.WriteAsync(8, data), Is.EqualTo(BlkifStatus.Okay));
        var back = new byte[4096];
        Assert.That(await front.ReadAsync(8, back), Is.EqualTo(BlkifStatus.Okay));
        Assert.That(back, Is.EqualTo(data));
        Assert.That(images, Is.EqualTo(new[] { "/images/guest.img" }));

        Assert.That(() => XenVbdToolstack.WriteAttach(emulator.Store, new XenVbdAttachment(guest.Id, "xvdb", "again") { DeviceType = "vbd3" }),
            Throws.TypeOf<XenToolstackException>().With.Message.Contains("already has device xvdb"));

        XenVbdToolstack.WriteDetachRequest(emulator.Store, nodes);
        Waits.ForStore(emulator.Store, () => XenVbdToolstack.IsReleased(emulator.Store, nodes), "the backend's Closed");
        Assert.That(front.IsConnected, Is.False, "the guest let go");
        XenVbdToolstack.RemoveNodes(emulator.Store, nodes);
        Assert.That(emulator.Store.Directory(nodes.BackendPath), Is.Empty);
        Assert.That(Waits.OnLoop(runtime, () => runtime.Sessions.Count), Is.Zero, "the session closed before the backend wrote Closed");
        front.Dispose();
        cts.Cancel();
        await Waits.For(loop, "the loop's end");
    }

    /// <summary>Records the order of writes; everything else goes to the wrapped store.</summary>
    private sealed class RecordingStore(IXenStore inner) : IXenStore
    {
        public List<string> Writes { get; } = new();
        public string? Read(string path) => inner.Read(path);
        public void Write(string path, string value) { Writes.Add(path); inner.Write(path, value); }
        public bool Remove(string path) => inner.Remove(path);
        public IReadOnlyList<string> Directory(string path) => inner.Directory(path);
        public IDisposable Watch(string path, Action<string> onChanged) => inner.Watch(path, onChanged);
    }

    [TestCase(false)]
    [TestCase(true)]
    public void WriteAttach_WithoutTransaction_EachStateWrittenAfterItsDirectoryAndBackendStateLast(bool readOnly)
    {
        // A backend watching outside a transaction reads 'mode' and 'params' as soon as 'state' appears (the vbd3
        // attach test once lost that race under load: "the backend went to Closed before connecting").
        using var emulator = new XenEmulator();
        var store = new RecordingStore(emulator.Store);
        var nodes = XenVbdToolstack.WriteAttach(store, new XenVbdAttachment(3, "xvdc", "img") { ReadOnly = readOnly });
        var fe = store.Writes.Where(w => w.StartsWith(nodes.FrontendPath, StringComparison.Ordinal)).ToList();
        Assert.Multiple(() =>
        {
            Assert.That(store.Writes[^1], Is.EqualTo(nodes.BackendPath + "/state"), "the backend's state comes last");
            Assert.That(fe[^1], Is.EqualTo(nodes.FrontendPath + "/state"), "the frontend's state comes after its other nodes");
            Assert.That(store.Writes.IndexOf(nodes.BackendPath + "/mode"), Is.LessThan(store.Writes.Count - 1));
            Assert.That(store.Writes.IndexOf(nodes.BackendPath + "/params"), Is.LessThan(store.Writes.Count - 1));
            Assert.That(store.Writes.Count(w => w.EndsWith("/state", StringComparison.Ordinal)), Is.EqualTo(2));
        });
    }

    [Test]
    public void WriteDetachRequest_NoSuchDevice_ClearError()
    {
        using var emulator = new XenEmulator();
        var nodes = XenVbdToolstack.PathsFor(new XenVbdAttachment(7, "xvdc", "-"));
        Assert.That(() => XenVbdToolstack.WriteDetachRequest(emulator.Store, nodes),
            Throws.TypeOf<XenToolstackException>().With.Message.Contains("no such device"));
    }

    [TestCase("xvda", 51712)]
    [TestCase("xvdb", 51728)]
    [TestCase("xvdp", 51952)]
    [TestCase("xvdq", (1 << 28) | (16 << 8))]
    [TestCase("xvdaa", (1 << 28) | (26 << 8))]
    [TestCase("sdb", 2064)]
    [TestCase("51760", 51760)]
    public void VirtualDevice_KnownNames_VbdInterfaceNumbers(string name, int expected)
    {
        Assert.That(XenVirtualDevice.TryParse(name, out var n, out var error), Is.True, error);
        Assert.That(n, Is.EqualTo(expected));
    }

    [TestCase("", "empty")]
    [TestCase("xvd", "no disk letter")]
    [TestCase("xvdb1", "partition")]
    [TestCase("hda", "not an xvdX")]
    [TestCase("sdq", "sd disks stop")]
    [TestCase("0", "positive")]
    [TestCase("xvdbB", "unexpected characters")]
    public void VirtualDevice_BadNames_ClearError(string name, string expected)
    {
        Assert.That(XenVirtualDevice.TryParse(name, out _, out var error), Is.False);
        Assert.That(error, Does.Contain(expected));
    }

    [FsCheck.NUnit.Property(MaxTest = 200)]
    public bool VirtualDevice_AnyXvdDisk_EncodesItsIndex(ushort raw)
    {
        int disk = raw;
        var letters = "";
        for (int d = disk + 1; d > 0; d = (d - 1) / 26) letters = (char)('a' + (d - 1) % 26) + letters;
        int expected = disk < 16 ? (202 << 8) | (disk << 4) : (1 << 28) | (disk << 8);
        return XenVirtualDevice.TryParse("xvd" + letters, out var n, out _) && n == expected;
    }
}
