using BlkTap.Emulator;
using NUnit.Framework;

namespace BlkTap.Emulator.Tests;

/// <summary>One guest with one vbd served by a <see cref="TestBackend"/> in dom0.</summary>
internal sealed class EmulatorHarness
{
    public EmulatorHarness(XenEmulator emulator, EmulatedDomain guest, BlkFront front, TestBackend backend, byte[] disk)
    {
        Emulator = emulator;
        Guest = guest;
        Front = front;
        Backend = backend;
        Disk = disk;
    }

    public XenEmulator Emulator { get; }
    public EmulatedDomain Guest { get; }
    public BlkFront Front { get; }
    public TestBackend Backend { get; }
    public byte[] Disk { get; }

    /// <summary>Creates a guest, the vbd nodes, the backend and the frontend, and runs the handshake to Connected.</summary>
    public static EmulatorHarness Connect(XenEmulator emulator, int diskSectors = 2048, BlkFrontOptions? options = null,
        int devid = 51712, Action<TestBackend>? configure = null, EmulatedDomain? guest = null)
    {
        guest ??= emulator.CreateDomain("guest");
        var disk = new byte[diskSectors * 512];
        var paths = XenbusDevices.CreateVbd(emulator.Store, guest.Id, 0, devid, "mem:test");
        var backend = new TestBackend(emulator, paths, 0, guest.Id, disk);
        configure?.Invoke(backend);
        backend.Start();
        var front = new BlkFront(emulator, guest, devid, options);
        Wait(emulator, front.ConnectAsync());
        Assert.That(backend.Error, Is.Null, "test backend error");
        return new EmulatorHarness(emulator, guest, front, backend, disk);
    }

    /// <summary>Pumps (or, threaded, waits for) the emulator until the task completes, and returns its result.</summary>
    public static T Wait<T>(XenEmulator emulator, Task<T> task)
    {
        Assert.That(emulator.RunUntil(() => task.IsCompleted), Is.True, "the task did not complete (the emulator went idle)");
        return task.GetAwaiter().GetResult();
    }

    /// <summary>Pumps the emulator until the task completes and rethrows its failure.</summary>
    public static void Wait(XenEmulator emulator, Task task)
    {
        Assert.That(emulator.RunUntil(() => task.IsCompleted), Is.True, "the task did not complete (the emulator went idle)");
        task.GetAwaiter().GetResult();
    }
}
