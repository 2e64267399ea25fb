namespace BlkTap.Xen;

/// <summary>Settings of a <see cref="BlktapDevice2005"/>. Set before <see cref="BlktapDevice2005.Open"/>; not thread-safe.</summary>
public sealed class BlktapDevice2005Options
{
    /// <summary>The device node (blktaplib.c opens <c>/dev/blktap</c>).</summary>
    public string DevicePath { get; set; } = BlktapDeviceAbi.DefaultDevicePath;

    /// <summary>
    /// The mode set with SETMODE (must pass <see cref="BlktapDeviceAbi.IsValidMode"/>). The default,
    /// <see cref="BlktapDeviceAbi.ModeInterpose"/>, is the 2005 library's (blktaplib.c): requests that pass every
    /// hook reach the real backend through the be ring. Without <see cref="BlktapDeviceAbi.ModeInterceptBe"/> the
    /// driver ignores the be ring, so the device is not the runtime's backend and a request that passes every hook
    /// is refused.
    /// </summary>
    public uint Mode { get; set; } = BlktapDeviceAbi.ModeInterpose;

    /// <summary>
    /// Whether the kernel maps a WRITE's data pages writable into the tap. False (the default) for the driver built
    /// with CONFIG_XEN_BLKDEV_GRANT, which maps them read-only: hooks then see a private copy of write data, and
    /// a passed write whose data a hook changed is refused (the change could never reach the backend). True only
    /// for a driver built without grant tables, which maps them writable; hooks then change the data in place.
    /// </summary>
    public bool WriteDataWritable { get; set; }
}
