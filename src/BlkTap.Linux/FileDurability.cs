using BlkTap.Linux.Interop;

namespace BlkTap.Linux;

/// <summary>
/// What .NET does not offer for durable files: fsync of a directory, so that a file just created or renamed in it
/// survives a power cut (the new name lives in the directory, not in the file). Thread-safe.
/// </summary>
public static class FileDurability
{
    /// <summary>
    /// fsyncs <paramref name="directory"/>. Throws <see cref="LinuxInteropException"/> (an <see cref="IOException"/>)
    /// naming the directory and the errno when it cannot be opened or synced.
    /// </summary>
    public static void SyncDirectory(string directory)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        using var fd = Libc.Open(directory, Libc.O_RDONLY | Libc.O_DIRECTORY);
        if (fd.IsInvalid) throw Errno.Exception("open", $"directory '{directory}' (to sync it)");
        int errno = Libc.Fsync(fd);
        // NOTE: some file systems (and /proc-like ones) refuse fsync on a directory with EINVAL: nothing to make durable.
        if (errno != 0 && errno != Errno.EINVAL) throw Errno.Exception("fsync", errno, $"directory '{directory}'");
    }
}
