using BlkTap.Linux.Interop;

namespace BlkTap.Linux.Internal;

/// <summary>
/// A non-blocking pipe whose read end joins a poll set so another thread can wake (and stop) a poll loop.
/// Thread-safe: <see cref="Signal"/> from any thread; <see cref="Drain"/> only from the polling thread.
/// </summary>
internal sealed class WakePipe : IDisposable
{
    private readonly SafeFdHandle _read;
    private readonly SafeFdHandle _write;

    public WakePipe() => (_read, _write) = Libc.Pipe();

    /// <summary>The read end, for a <see cref="PollFd"/>.</summary>
    public SafeFdHandle ReadEnd => _read;

    /// <summary>Makes the read end readable. A full pipe is already readable, so EAGAIN is fine.</summary>
    public void Signal()
    {
        Span<byte> one = [1];
        Libc.Write(_write, one);
    }

    /// <summary>Empties the pipe.</summary>
    public void Drain()
    {
        Span<byte> buffer = stackalloc byte[64];
        while (Libc.Read(_read, buffer) > 0) { }
    }

    public void Dispose()
    {
        _write.Dispose();
        _read.Dispose();
    }
}
