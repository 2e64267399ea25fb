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

    /// <summary>
    /// <see cref="ReadFully"/> without waiting: true when the whole buffer was filled (past the end of the file: zeroes)
    /// with no device I/O; false when the file lacks <see cref="INoWaitStorageFile"/> or part of it would have to wait
    /// (read it again, blocking, on a worker).
    /// </summary>
    public static bool TryReadFullyNoWait(this IStorageFile file, Span<byte> buffer, long offset)
    {
        if (file is not INoWaitStorageFile nowait) return false;
        while (!buffer.IsEmpty)
        {
            if (!nowait.TryReadNoWait(buffer, offset, out int n)) return false;
            if (n <= 0) { buffer.Clear(); break; }
            buffer = buffer[n..];
            offset += n;
        }
        return true;
    }

    /// <summary>
    /// <see cref="IStorageFile.Write"/> without waiting: false when the file lacks <see cref="INoWaitStorageFile"/> or
    /// the write would have to wait (write it again, blocking, on a worker).
    /// </summary>
    public static bool TryWriteNoWait(this IStorageFile file, ReadOnlySpan<byte> data, long offset) =>
        file is INoWaitStorageFile nowait && nowait.TryWriteNoWait(data, offset);
}
