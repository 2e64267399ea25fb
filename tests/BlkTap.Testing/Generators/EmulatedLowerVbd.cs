using BlkTap.Emulator;
using BlkTap.Chains;

namespace BlkTap.Testing.Generators;

/// <summary>
/// A vbd for the <c>vbd</c> tap to connect to, as <c>xl block-attach 0 phy:...,xvdb,w</c> makes one in dom0: an
/// emulator of its own in which dom0's "kernel blkback" (a runtime serving a <see cref="MemoryBlockDevice"/>, backend
/// type <c>vbd</c>) serves a vbd whose frontend is dom0 itself. A chain's <c>vbd:dev=...</c> tap built with
/// <see cref="Platform"/> as its <see cref="TapContext.Frontends"/> connects to it through the emulator's grant
/// tables and event channels.
/// </summary>
/// <remarks>
/// Threading: create, read <see cref="Snapshot"/> and dispose from one test thread; the blkback runtime runs on its own
/// loop thread. Dispose after the chain whose vbd tap uses it.
/// </remarks>
public sealed class EmulatedLowerVbd : IDisposable
{
    private static readonly TimeSpan StopDeadline = TimeSpan.FromSeconds(60);
    private readonly CancellationTokenSource _stop = new();
    private readonly TapRuntime _runtime;
    private readonly XenbusBlockBackend _backend;
    private readonly Task _loop;
    private readonly MemoryBlockDevice _disk;

    /// <summary>Serves vbd <paramref name="deviceNumber"/> of dom0 from a zeroed memory disk of <paramref name="bytes"/> bytes.</summary>
    public EmulatedLowerVbd(int deviceNumber, long bytes, bool readOnly)
    {
        Emulator = new XenEmulator();
        _disk = new MemoryBlockDevice(bytes, readOnly);
        _runtime = new TapRuntime(new TapRuntimeOptions { Name = "blkback" });
        var serve = new BlockDeviceHook(_disk);
        _runtime.RegisterControlHook("disk", serve);
        _runtime.RegisterRequestHook("disk", serve);
        _loop = _runtime.RunAsync(_stop.Token);
        _backend = new XenbusBlockBackend(_runtime, Emulator.Store, Emulator.GrantMapperFor(0), Emulator.EventChannelFactoryFor(0),
            new XenbusBackendOptions { DeviceType = "vbd" });
        _backend.Start();
        XenbusDevices.CreateVbd(Emulator.Store, 0, 0, deviceNumber, "lower-disk", readOnly);
    }

    /// <summary>The emulator the vbd lives in.</summary>
    public XenEmulator Emulator { get; }

    /// <summary>dom0's frontend platform: give it to the chain as <see cref="TapContext.Frontends"/>.</summary>
    public BlockFrontendPlatform Platform => Emulator.FrontendPlatformFor(0);

    /// <summary>The memory disk's bytes, read now.</summary>
    public byte[] Snapshot()
    {
        var bytes = new byte[checked((int)(_disk.SectorCount * BlkifConstants.SectorSize))];
        var status = _disk.Read(0, bytes);
        if (status != BlkifStatus.Okay) throw new InvalidOperationException($"reading the lower vbd's disk: {status}");
        return bytes;
    }

    /// <summary>Stops blkback and the emulator.</summary>
    public void Dispose()
    {
        _backend.Dispose();
        _stop.Cancel();
        try { _loop.Wait(StopDeadline); }
        catch (AggregateException e) when (e.InnerException is OperationCanceledException) { }
        _runtime.Dispose();
        Emulator.Dispose();
        _stop.Dispose();
    }
}
