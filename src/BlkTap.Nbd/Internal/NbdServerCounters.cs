namespace BlkTap.Nbd.Internal;

/// <summary>A server's running totals, shared by its connections. Thread-safe (interlocked).</summary>
internal sealed class NbdServerCounters
{
    private long _repliesFromFile;

    /// <summary>Read replies whose data went from the image file to the socket with sendfile (no copy through a buffer).</summary>
    public long RepliesFromFile => Interlocked.Read(ref _repliesFromFile);

    public void ReplyFromFile() => Interlocked.Increment(ref _repliesFromFile);
}
