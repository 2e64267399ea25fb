namespace BlkTap.Storage;

/// <summary>How <see cref="IStorageProvider.Open"/> opens a file.</summary>
[Flags]
public enum StorageOpenOptions
{
    /// <summary>Read-only, shared with other openers.</summary>
    None = 0,
    /// <summary>Read and write.</summary>
    Writable = 1,
    /// <summary>Nobody else may open it while it is open (an advisory lock on Linux): a cow overlay.</summary>
    Exclusive = 2,
}

/// <summary>
/// Opens the files storage taps keep their data in, and the directory operations that make new files durable. A
/// <see cref="Chains.TapContext"/> carries one (<see cref="Chains.TapContext.Storage"/>; null there means the OS's files),
/// so a test or the power-cut simulation can put every image and overlay of a chain on storage of its own.
/// </summary>
/// <remarks>
/// Threading: every member is safe from any thread. Failures are thrown as <see cref="IOException"/> (a missing file as
/// <see cref="FileNotFoundException"/>) or <see cref="UnauthorizedAccessException"/>, naming the path.
/// </remarks>
public interface IStorageProvider
{
    /// <summary>True when a file exists at <paramref name="path"/>.</summary>
    bool FileExists(string path);

    /// <summary>True when a directory exists at <paramref name="path"/>.</summary>
    bool DirectoryExists(string path);

    /// <summary>Opens an existing file.</summary>
    IStorageFile Open(string path, StorageOpenOptions options);

    /// <summary>Creates a file (replacing one of that name), empty, writable and exclusive.</summary>
    IStorageFile Create(string path);

    /// <summary>
    /// Renames <paramref name="from"/> to <paramref name="to"/> atomically (rename(2)); throws <see cref="IOException"/>
    /// when <paramref name="to"/> exists. Durable only after <see cref="SyncDirectory"/>.
    /// </summary>
    void Move(string from, string to);

    /// <summary>Deletes a file if it exists. Durable only after <see cref="SyncDirectory"/>.</summary>
    void Delete(string path);

    /// <summary>Makes the names created, renamed or deleted in <paramref name="directory"/> durable (fsync of the directory).</summary>
    void SyncDirectory(string directory);
}
