using System.Net.Sockets;

namespace BlkTap.Nbd.Internal;

/// <summary>Exact-length reads and writes on a blocking socket (handshake only). Not thread-safe.</summary>
internal static class BlockingIo
{
    /// <summary>Fills <paramref name="buffer"/>; throws <see cref="NbdProtocolException"/> if the peer closes first.</summary>
    public static void ReadExact(Socket socket, Span<byte> buffer, string what)
    {
        int done = 0;
        while (done < buffer.Length)
        {
            int n;
            try { n = socket.Receive(buffer[done..]); }
            catch (SocketException e) when (e.SocketErrorCode is SocketError.TimedOut or SocketError.WouldBlock)
            {
                throw new NbdProtocolException($"timed out waiting for {what}", e);
            }
            if (n == 0) throw new NbdProtocolException($"connection closed by peer while reading {what} ({done} of {buffer.Length} bytes)");
            done += n;
        }
    }

    /// <summary>Sends all of <paramref name="data"/>.</summary>
    public static void WriteAll(Socket socket, ReadOnlySpan<byte> data)
    {
        while (data.Length > 0)
        {
            int n = socket.Send(data);
            data = data[n..];
        }
    }
}
