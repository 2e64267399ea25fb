using System.Net;
using System.Net.Sockets;

namespace BlkTap.Linux.Tests.LoopWaiters;

/// <summary>
/// Two connected loopback TCP sockets: <see cref="Watched"/> is polled through its descriptor (<see cref="Fd"/>), so
/// it is used with synchronous calls only (an async call would hand it to .NET's own epoll engine); the test drives
/// <see cref="Peer"/>.
/// </summary>
internal sealed class SocketPair : IDisposable
{
    public SocketPair()
    {
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(1);
        Peer = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        Peer.Connect(listener.LocalEndPoint!);
        Watched = listener.Accept();
        Fd = (int)Watched.Handle;
    }

    public Socket Watched { get; }

    public Socket Peer { get; }

    public int Fd { get; }

    /// <summary>Sends <paramref name="count"/> bytes from the peer.</summary>
    public void PeerSends(int count = 1) => Peer.Send(new byte[count]);

    /// <summary>The peer resets the connection (RST): a hang-up of both directions (EPOLLHUP|EPOLLERR), not a mere FIN.</summary>
    public void PeerResets()
    {
        Peer.LingerState = new LingerOption(true, 0);
        Peer.Close();
    }

    public void Dispose()
    {
        Watched.Dispose();
        Peer.Dispose();
    }
}
