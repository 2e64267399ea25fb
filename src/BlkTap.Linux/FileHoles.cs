using BlkTap.Linux.Interop;
using Microsoft.Win32.SafeHandles;

namespace BlkTap.Linux;

/// <summary>
/// Punches holes in files (fallocate with FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE): the range reads
/// as zeroes afterwards and its blocks go back to the file system. What a discard on a raw image does.
/// </summary>
/// <remarks>Thread-safe.</remarks>
public static class FileHoles
{
    /// <summary>
    /// Punches a hole of <paramref name="length"/> bytes at <paramref name="offset"/>. Returns OKAY,
    /// EOPNOTSUPP where the file system cannot punch holes, or ERROR for any other failure.
    /// </summary>
    public static BlkifStatus PunchHole(SafeFileHandle file, long offset, long length)
    {
        ArgumentNullException.ThrowIfNull(file);
        if (offset < 0 || length <= 0) return BlkifStatus.Error;
        int errno = Libc.Fallocate(file, Libc.FALLOC_FL_PUNCH_HOLE | Libc.FALLOC_FL_KEEP_SIZE, offset, length);
        return errno switch
        {
            0 => BlkifStatus.Okay,
            Errno.EOPNOTSUPP => BlkifStatus.NotSupported,
            _ => BlkifStatus.Error,
        };
    }
}
