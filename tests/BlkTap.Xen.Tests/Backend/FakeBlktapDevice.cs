using System.Collections.Concurrent;
using System.IO.MemoryMappedFiles;
using BlkTap.Xen;
using BlkTap.Xen.Internal;

namespace BlkTap.Xen.Tests.Backend;

/// <summary>
/// A stand-in for the 2005 /dev/blktap DEVICE FILE (not for our code): 771 pages of shared memory (a mapped file
/// in /dev/shm) and the open file's operations (mmap, ioctl, poll) handed to the <see cref="SimulatedBlktapKernel"/>.
/// Records every ioctl. Thread-safe as the kernel is.
/// </summary>
internal sealed unsafe class FakeBlktapDevice : IBlktapDeviceIo
{
    private readonly string _path;
    private readonly MemoryMappedFile _file;
    private readonly MemoryMappedViewAccessor _view;
    private byte* _pointer;
    private int _disposed;

    public FakeBlktapDevice()
    {
        _path = Path.Combine(Directory.Exists("/dev/shm") ? "/dev/shm" : Path.GetTempPath(), $"blktap2005-{Guid.NewGuid():N}");
        _file = MemoryMappedFile.CreateFromFile(_path, FileMode.CreateNew, null, Length);
        _view = _file.CreateViewAccessor(0, Length);
        _view.SafeMemoryMappedViewHandle.AcquirePointer(ref _pointer);
    }

    /// <summary>(MMAP_PAGES + RING_PAGES) pages, computed here from the driver's numbers: 64 * (11 + 1) + 3.</summary>
    public static long Length => (64L * 12 + 3) * 4096;

    public nint Base => (nint)_pointer;
    public SimulatedBlktapKernel Kernel { get; set; } = null!;
    public ConcurrentQueue<(uint Command, nuint Argument)> Ioctls { get; } = new();
    public ConcurrentQueue<long> MapRequests { get; } = new();

    public nint Map(long length)
    {
        MapRequests.Enqueue(length);
        int rc = Kernel.Mmap(length);
        if (rc != 0) throw new XenInteropException("mmap", rc, "blktap: you _must_ map exactly 771 pages!");
        return Base;
    }

    public int Ioctl(uint command, nuint argument)
    {
        Ioctls.Enqueue((command, argument));
        return Kernel.Ioctl(command, argument);
    }

    public bool WaitForEvents(int timeoutMs) => Kernel.Poll(timeoutMs);

    public void Wake() => Kernel.WakePoller();

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return; // the tap disposes it, and so does the harness
        _view.SafeMemoryMappedViewHandle.ReleasePointer();
        _view.Dispose();
        _file.Dispose();
        File.Delete(_path);
    }
}
