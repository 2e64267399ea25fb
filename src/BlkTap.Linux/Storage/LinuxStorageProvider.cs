using BlkTap.Storage;

namespace BlkTap.Linux.Storage;

/// <summary>
/// The OS's files: what storage taps use when their <see cref="Chains.TapContext.Storage"/> is null. An exclusive open
/// takes an advisory lock (flock), so a second process opening the same overlay is refused.
/// </summary>
/// <remarks>Threading: stateless; safe from any thread.</remarks>
public sealed class LinuxStorageProvider : IStorageProvider
{
    /// <summary>The one instance.</summary>
    public static LinuxStorageProvider Shared { get; } = new();

    private LinuxStorageProvider() { }

    /// <inheritdoc/>
    public bool FileExists(string path) => File.Exists(path);

    /// <inheritdoc/>
    public bool DirectoryExists(string path) => Directory.Exists(path);

    /// <inheritdoc/>
    public IStorageFile Open(string path, StorageOpenOptions options)
    {
        bool writable = (options & StorageOpenOptions.Writable) != 0;
        var share = (options & StorageOpenOptions.Exclusive) != 0 ? FileShare.None : FileShare.ReadWrite;
        var handle = File.OpenHandle(path, FileMode.Open, writable ? FileAccess.ReadWrite : FileAccess.Read, share);
        try { return new LinuxStorageFile(path, handle, !writable); }
        catch { handle.Dispose(); throw; }
    }

    /// <inheritdoc/>
    public IStorageFile Create(string path)
    {
        var handle = File.OpenHandle(path, FileMode.Create, FileAccess.ReadWrite, FileShare.None);
        try { return new LinuxStorageFile(path, handle, readOnly: false); }
        catch { handle.Dispose(); throw; }
    }

    /// <inheritdoc/>
    public void Move(string from, string to) => File.Move(from, to, overwrite: false);

    /// <inheritdoc/>
    public void Delete(string path) => File.Delete(path);

    /// <inheritdoc/>
    public void SyncDirectory(string directory) => FileDurability.SyncDirectory(directory);
}
