using System.Collections.Concurrent;
using BlkTap.Emulator;
using NUnit.Framework;

namespace BlkTap.Xen.Tests.Backend;

/// <summary>
/// The xenbus backend against a toolstack that writes the device's nodes one by one (no transaction), as
/// <see cref="XenbusDevices.CreateVbd"/> does: the backend directory (its <c>state</c> last), then the
/// frontend directory. On a loaded dom0 the backend may wake up at any point of that sequence. The
/// deterministic emulator makes each split point a reproducible interleaving: write the first nodes, let the
/// backend run until everything it reacts to is done, write the rest, connect.
/// </summary>
[TestFixture]
public sealed class XenbusHandshakeOrderTests
{
    private const int DiskSectors = 2048;
    private const int DeviceId = 51728;

    /// <summary>The toolstack's writes for one vbd of <paramref name="guest"/>, in <see cref="XenbusDevices.CreateVbd"/>'s order.</summary>
    private static IReadOnlyList<(string Path, string Value)> ToolstackWrites(ushort guest)
    {
        var recorder = new RecordingStore();
        XenbusDevices.CreateVbd(recorder, guest, 0, DeviceId, "late-disk");
        return recorder.Writes;
    }

    private static IEnumerable<int> SplitPoints() => Enumerable.Range(0, ToolstackWrites(1).Count + 1);

    [TestCaseSource(nameof(SplitPoints))]
    public async Task Handshake_BackendRunsBetweenToolstackWrites_ConnectsWithoutClosing(int split)
    {
        var diagnostics = new ConcurrentQueue<TapDiagnostic>();
        await using var rig = await EmulatorRig.StartAsync(
            new EmulatorRigOptions { Frontends = 1, Deterministic = true, Seed = 100 + split, Diagnostics = diagnostics.Enqueue },
            runtime =>
            {
                var serve = new BlockDeviceHook(_ => new MemoryBlockDevice(DiskSectors * 512L));
                runtime.RegisterControlHook("mem", serve);
                runtime.RegisterRequestHook("mem", serve);
            });
        var emulator = rig.Emulator;
        var guest = emulator.CreateDomain("late");
        var writes = ToolstackWrites(guest.Id);
        var backendPath = XenbusDevices.BackendPath(0, guest.Id, DeviceId);

        foreach (var (path, value) in writes.Take(split)) emulator.Store.Write(path, value);
        emulator.RunUntilIdle(); // the backend reacts to the partial device: every watch event and loop pass runs
        Assert.That(XenbusDevices.ReadState(emulator.Store, backendPath), Is.Not.EqualTo(XenbusState.Closing).And.Not.EqualTo(XenbusState.Closed),
            $"the backend closed the device after the first {split} toolstack writes: {string.Join("; ", diagnostics)}");
        foreach (var (path, value) in writes.Skip(split)) emulator.Store.Write(path, value);

        var front = new BlkFront(emulator, guest, DeviceId);
        await rig.Execute(() => front.ConnectAsync());
        var data = new byte[4096];
        new Random(split).NextBytes(data);
        var back = new byte[data.Length];
        BlkifStatus wrote = default, read = default;
        await rig.Execute(async () =>
        {
            wrote = await front.WriteAsync(8, data);
            read = await front.ReadAsync(8, back);
        });
        Assert.That((wrote, read), Is.EqualTo((BlkifStatus.Okay, BlkifStatus.Okay)));
        Assert.That(back, Is.EqualTo(data));
        Assert.That(diagnostics.Where(d => d.Level >= TapDiagnosticLevel.Warning), Is.Empty);
        Assert.That(emulator.Faults, Is.Empty);
        front.Dispose();
    }

    /// <summary>Records writes; everything else is a store with nothing in it.</summary>
    private sealed class RecordingStore : IXenStore
    {
        public List<(string Path, string Value)> Writes { get; } = new();
        public string? Read(string path) => Writes.LastOrDefault(w => w.Path == path).Value;
        public void Write(string path, string value) => Writes.Add((path, value));
        public bool Remove(string path) => false;
        public IReadOnlyList<string> Directory(string path) => Array.Empty<string>();
        public IDisposable Watch(string path, Action<string> onChanged) => throw new NotSupportedException();
    }
}
