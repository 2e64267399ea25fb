using System.Net.Sockets;

namespace BlkTap.Nbd.Internal;

/// <summary>
/// Buffered exact reads from a blocking socket during one connection's handshake, with an overall deadline. What it
/// read past the handshake (pipelined first requests) is handed to the transmission phase through <see cref="Leftover"/>.
/// Single reader; not thread-safe.
/// </summary>
internal sealed class SocketReader(Socket socket, DateTime deadlineUtc)
{
    private readonly byte[] _buf = new byte[64 * 1024];
    private int _head, _tail;

    /// <summary>Bytes received but not yet consumed.</summary>
    public ReadOnlySpan<byte> Leftover => _buf.AsSpan(_head, _tail - _head);

    /// <summary>
    /// Fills <paramref name="dest"/>. Returns false on EOF before the first byte when <paramref name="eofOk"/>;
    /// throws <see cref="EndOfStreamException"/> on EOF in the middle and <see cref="TimeoutException"/> past the deadline.
    /// </summary>
    public bool ReadExact(Span<byte> dest, bool eofOk)
    {
        int done = 0;
        while (done < dest.Length)
        {
            int avail = _tail - _head;
            if (avail > 0)
            {
                int take = Math.Min(avail, dest.Length - done);
                _buf.AsSpan(_head, take).CopyTo(dest[done..]);
                _head += take;
                done += take;
                continue;
            }
            _head = _tail = 0;
            int n = Receive(_buf);
            if (n == 0)
            {
                if (done == 0 && eofOk) return false;
                throw new EndOfStreamException($"client closed the connection after {done} of {dest.Length} bytes of a message");
            }
            _tail = n;
        }
        return true;
    }

    private int Receive(byte[] into)
    {
        var left = deadlineUtc - DateTime.UtcNow;
        if (left <= TimeSpan.Zero) throw new TimeoutException("the client did not finish the handshake in time");
        socket.ReceiveTimeout = (int)Math.Clamp(Math.Ceiling(left.TotalMilliseconds), 1, int.MaxValue);
        int n = socket.Receive(into, 0, into.Length, SocketFlags.None, out var error);
        if (error == SocketError.TimedOut || error == SocketError.WouldBlock) throw new TimeoutException("the client did not finish the handshake in time");
        if (error != SocketError.Success) throw new SocketException((int)error);
        return n;
    }
}
