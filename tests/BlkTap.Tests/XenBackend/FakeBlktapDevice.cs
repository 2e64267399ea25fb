using System.Collections.Concurrent;
using System.IO.MemoryMappedFiles;
using BlkTap.Xen;
using BlkTap.Xen.Internal;

namespace BlkTap.Tests.XenBackend;

/// <summary>
/// A stand-in for the 2005 /dev/blktap DEVICE (not for our code): a memory-mapped file with the device's layout
/// (3 ring pages + data area), an ioctl channel that records calls and forwards kicks to the simulated kernel,
/// and a readable flag the simulated kernel raises.
/// </summary>
internal sealed unsafe class FakeBlktapDevice : IBlktapDeviceIo
{
    private readonly string _path;
    private readonly MemoryMappedFile _file;
    private readonly MemoryMappedViewAccessor _view;
    private readonly SemaphoreSlim _readable = new(0);
    private byte* _pointer;

    public FakeBlktapDevice(int slots)
    {
        Length = BlktapDeviceAbi.MappingLength(slots);
        _path = Path.Combine(Directory.Exists("/dev/shm") ? "/dev/shm" : Path.GetTempPath(), $"blktap2005-{Guid.NewGuid():N}");
        _file = MemoryMappedFile.CreateFromFile(_path, FileMode.CreateNew, null, Length);
        _view = _file.CreateViewAccessor(0, Length);
        _view.SafeMemoryMappedViewHandle.AcquirePointer(ref _pointer);
        // The kernel initialises the three shared rings (SHARED_RING_INIT) when the device is mapped.
        for (int page = 0; page < BlktapDeviceAbi.RingPages; page++)
        {
            var header = new Span<byte>(_pointer + page * BlktapDeviceAbi.PageSize, SharedRingLayout.EntriesOffset);
            header.Clear();
            header[SharedRingLayout.ReqEvent] = 1;
            header[SharedRingLayout.RspEvent] = 1;
        }
    }

    public long Length { get; }
    public nint Base => (nint)_pointer;
    public ConcurrentQueue<(uint Command, nuint Argument)> Ioctls { get; } = new();
    public Action? OnKickBackend { get; set; }
    public Action? OnKickFrontend { get; set; }
    public int MapCalls { get; private set; }

    public nint Map(long length)
    {
        MapCalls++;
        if (length != Length) throw new XenInteropException("mmap", 22, $"the fake device maps {Length} bytes, asked {length}");
        return Base;
    }

    public int Ioctl(uint command, nuint argument)
    {
        Ioctls.Enqueue((command, argument));
        if (command == BlktapDeviceAbi.IoctlKickBe) OnKickBackend?.Invoke();
        else if (command == BlktapDeviceAbi.IoctlKickFe) OnKickFrontend?.Invoke();
        else if (command != BlktapDeviceAbi.IoctlSetMode) return 25; // ENOTTY
        return 0;
    }

    /// <summary>The simulated kernel has work for the tap (poll would say POLLIN).</summary>
    public void Raise() => _readable.Release();

    public bool WaitForEvents(int timeoutMs) => _readable.Wait(timeoutMs);

    public void Wake() => _readable.Release();

    public void Dispose()
    {
        _view.SafeMemoryMappedViewHandle.ReleasePointer();
        _view.Dispose();
        _file.Dispose();
        File.Delete(_path);
    }
}
