namespace BlkTap.Storage;

/// <summary>
/// An optional capability of an <see cref="IStorageFile"/>: once <see cref="TryMap"/> has succeeded, reads and writes of
/// pages known to hold data are copied through a shared mapping of the file instead of one system call each. Offered
/// only by files in memory (tmpfs, ramfs), where the page cache is the file.
/// </summary>
/// <remarks>
/// <para>
/// Threading: <see cref="TryMap"/> from any thread, once, before or between reads and writes (a call that runs at the
/// same time as another uses the mapping or not, both correct); the properties from any thread. Reads and writes stay as
/// concurrent as <see cref="IStorageFile"/>'s.
/// </para>
/// <para>
/// What the mapping changes for the file's users: nothing they can see in the bytes. A page that holds no data (a hole)
/// is still read and written with a system call, so a read of a hole allocates nothing and a write that finds the file
/// system full fails with an error, not a signal; each mapped page's first touch costs a page fault, so the mapping
/// pays off when the same pages are read and written again and again. The one risk is outside the file's users: a
/// file shortened by another process while it is mapped ends this process with SIGBUS at the next copy past the new
/// end (a shortening through <see cref="IStorageFile.SetLength"/> is safe).
/// </para>
/// </remarks>
public interface IMappableStorageFile : IStorageFile
{
    /// <summary>
    /// Maps the file. True when it is mapped (now or before); false with the reason in <paramref name="unavailable"/>
    /// when the file would offer a mapping but the system refuses (mmap failed), with null there when this file offers
    /// none (not in memory, empty).
    /// </summary>
    bool TryMap(out string? unavailable);

    /// <summary>True once the file is mapped.</summary>
    bool Mapped { get; }

    /// <summary>Reads and writes served by copying through the mapping so far (a statistic; any thread).</summary>
    long MappedOperations { get; }
}
