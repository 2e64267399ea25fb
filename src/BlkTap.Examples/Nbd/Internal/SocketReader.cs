using System.Net.Sockets;

namespace BlkTap.Examples.Nbd.Internal;

/// <summary>Buffered exact reads from a socket for one server connection. Single reader; not thread-safe.</summary>
internal sealed class SocketReader(Socket socket)
{
    private readonly byte[] _buf = new byte[64 * 1024];
    private int _head, _tail;

    /// <summary>
    /// Fills <paramref name="dest"/>. Returns false on EOF before the first byte when <paramref name="eofOk"/>;
    /// throws <see cref="EndOfStreamException"/> on EOF in the middle.
    /// </summary>
    public async ValueTask<bool> ReadExactAsync(Memory<byte> dest, bool eofOk, CancellationToken ct)
    {
        int done = 0;
        while (done < dest.Length)
        {
            int avail = _tail - _head;
            if (avail > 0)
            {
                int take = Math.Min(avail, dest.Length - done);
                _buf.AsMemory(_head, take).CopyTo(dest[done..]);
                _head += take;
                done += take;
                continue;
            }
            int n;
            if (dest.Length - done >= _buf.Length)
            {
                n = await socket.ReceiveAsync(dest[done..], SocketFlags.None, ct).ConfigureAwait(false);
                if (n == 0) return Eof(done, dest.Length, eofOk);
                done += n;
                continue;
            }
            _head = _tail = 0;
            n = await socket.ReceiveAsync(_buf.AsMemory(), SocketFlags.None, ct).ConfigureAwait(false);
            if (n == 0) return Eof(done, dest.Length, eofOk);
            _tail = n;
        }
        return true;
    }

    private static bool Eof(int done, int want, bool eofOk)
    {
        if (done == 0 && eofOk) return false;
        throw new EndOfStreamException($"client closed the connection after {done} of {want} bytes of a message");
    }
}
