namespace BlkTap.Storage;

/// <summary>Helpers over <see cref="IStorageFile"/>. Thread-safety: as the file's.</summary>
public static class StorageFileExtensions
{
    /// <summary>
    /// Fills <paramref name="buffer"/> from <paramref name="offset"/> on, looping over short reads; what lies past the
    /// end of the file reads as zeroes (a file shrunk under us). Returns the bytes that came from the file.
    /// </summary>
    public static int ReadFully(this IStorageFile file, Span<byte> buffer, long offset)
    {
        ArgumentNullException.ThrowIfNull(file);
        int total = 0;
        while (!buffer.IsEmpty)
        {
            int n = file.Read(buffer, offset);
            if (n <= 0) { buffer.Clear(); break; }
            buffer = buffer[n..];
            offset += n;
            total += n;
        }
        return total;
    }
}
