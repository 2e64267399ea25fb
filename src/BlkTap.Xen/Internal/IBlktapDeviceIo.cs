namespace BlkTap.Xen.Internal;

/// <summary>
/// The four things <see cref="BlktapDevice2005"/> does with the kernel device: map it, ioctl it, wait for it to
/// become readable, and stop waiting. The real implementation is <see cref="LinuxBlktapDeviceIo"/>; tests put a
/// stand-in for the device (a memory-mapped file and a simulated kernel) behind it.
/// </summary>
/// <remarks>Threading: <see cref="WaitForEvents"/> runs on the device's poll thread; <see cref="Wake"/> from any
/// thread; <see cref="Map"/> and <see cref="Ioctl"/> on the tap's loop thread.</remarks>
internal interface IBlktapDeviceIo : IDisposable
{
    /// <summary>Maps <paramref name="length"/> bytes of the device from offset 0 (shared, read-write) and returns the address.</summary>
    /// <exception cref="XenInteropException">The mapping failed.</exception>
    nint Map(long length);

    /// <summary>Issues an ioctl with an integer argument. Returns 0, or the errno.</summary>
    int Ioctl(uint command, nuint argument);

    /// <summary>Waits until the device is readable (the kernel has work for the tap). False on timeout or <see cref="Wake"/>.</summary>
    /// <exception cref="XenInteropException">poll failed or the device reported an error condition.</exception>
    bool WaitForEvents(int timeoutMs);

    /// <summary>Makes a pending or the next <see cref="WaitForEvents"/> return early.</summary>
    void Wake();
}
