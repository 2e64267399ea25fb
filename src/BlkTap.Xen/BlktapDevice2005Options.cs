namespace BlkTap.Xen;

/// <summary>Settings of a <see cref="BlktapDevice2005"/>.</summary>
public sealed class BlktapDevice2005Options
{
    /// <summary>The device node.</summary>
    public string DevicePath { get; set; } = "/dev/blktap";

    /// <summary>
    /// Request slots the data area holds (each 12 pages); request ids name slots 0..Slots-1. The 2005 driver
    /// reserved MAX_PENDING_REQS = 64 slots.
    /// </summary>
    public int Slots { get; set; } = 64;

    /// <summary>The mode set with SETMODE; <see cref="BlktapDeviceAbi.ModeInterpose"/> (default) sees both directions.</summary>
    public uint Mode { get; set; } = BlktapDeviceAbi.ModeInterpose;
}
