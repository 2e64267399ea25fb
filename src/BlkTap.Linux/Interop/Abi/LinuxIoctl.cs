namespace BlkTap.Linux.Interop;

/// <summary>The Linux ioctl request encoding (<c>_IOC</c>).</summary>
/// <remarks>
/// NOTE: layout from Linux include/uapi/asm-generic/ioctl.h: nr bits 0-7, type bits 8-15, size bits 16-29,
/// direction bits 30-31 (_IOC_NONE 0, _IOC_WRITE 1, _IOC_READ 2). x86_64 and aarch64 use the generic layout;
/// powerpc, mips and sparc do not (not supported here).
/// </remarks>
internal static class LinuxIoctl
{
    public const uint IOC_NONE = 0;
    public const uint IOC_WRITE = 1;
    public const uint IOC_READ = 2;

    /// <summary><c>_IOC(dir, type, nr, size)</c>.</summary>
    public static uint Ioc(uint dir, char type, uint nr, int size)
    {
        if ((uint)size >= 1u << 14) throw new ArgumentOutOfRangeException(nameof(size), size, "ioctl argument size does not fit in 14 bits");
        if (nr > 0xFF) throw new ArgumentOutOfRangeException(nameof(nr), nr, "ioctl number does not fit in 8 bits");
        return (dir << 30) | ((uint)size << 16) | ((uint)(byte)type << 8) | nr;
    }
}
