using Microsoft.Win32.SafeHandles;

namespace BlkTap.Storage;

/// <summary>
/// A file whose bytes a transport may send itself, straight from the page cache (sendfile), when the chain answers a
/// read by naming a range of the file (<see cref="TapRequest.ReferenceFile"/>) instead of copying it into a buffer.
/// </summary>
/// <remarks>Threading: as <see cref="IStorageFile"/>; the property is safe from any thread.</remarks>
public interface IReferenceableStorageFile : IStorageFile
{
    /// <summary>
    /// The file's handle when sending from it never waits for a device (a file in memory: tmpfs, ramfs); null for a
    /// file on a disk, whose pages a send could have to read first, holding the loop. Owned by the file: valid until it
    /// is disposed.
    /// </summary>
    SafeFileHandle? ReferenceHandle { get; }
}
