using System.Net.Sockets;

namespace BlkTap.Nbd;

// Receiving: simple replies matched by cookie; a READ's payload is copied from the receive buffer, or received
// straight into the caller's buffer when enough of it is still to come.
public sealed partial class NbdClient
{
    /// <summary>
    /// The socket is readable: consumes every reply available without blocking and delivers completions.
    /// On a garbage reply or a closed connection, fails every pending request (see the class remarks).
    /// </summary>
    public void OnReadable()
    {
        if (_disposed) return;
        int epoch = _epoch;
        while (_socket != null)
        {
            while (_rxEnd > _rxStart)
            {
                if (_rxSlot < 0)
                {
                    if (_rxEnd - _rxStart < NbdMagic.SimpleReplyHeaderSize) break;
                    if (!NbdSimpleReply.TryRead(_rx.AsSpan(_rxStart, NbdMagic.SimpleReplyHeaderSize), out var reply, out var error))
                    {
                        Fail(error!);
                        return;
                    }
                    _rxStart += NbdMagic.SimpleReplyHeaderSize;
                    int index = _table.Lookup(reply.Cookie);
                    if (index < 0 || !_table[index].Sent || index == _directSlot)
                    {
                        Fail($"reply for unknown cookie 0x{reply.Cookie:x16}");
                        return;
                    }
                    ref var s = ref _table[index];
                    if (reply.Error == 0 && s.Command == NbdCommand.Read && s.Length > 0)
                    {
                        _rxSlot = index;
                        _rxDone = 0;
                        continue;
                    }
                    Complete(index, MapError(reply.Error));
                    if (epoch != _epoch) return;
                }
                else
                {
                    ref var s = ref _table[_rxSlot];
                    int take = Math.Min(_rxEnd - _rxStart, (int)s.Length - _rxDone);
                    _rx.AsSpan(_rxStart, take).CopyTo(s.Buffer.Span.Slice(_rxDone));
                    _rxStart += take;
                    _rxDone += take;
                    if (_rxDone == (int)s.Length)
                    {
                        int done = _rxSlot;
                        _rxSlot = -1;
                        Complete(done, NbdError.None);
                        if (epoch != _epoch) return;
                    }
                }
            }
            if (_rxStart == _rxEnd) _rxStart = _rxEnd = 0;

            int n;
            SocketError err;
            if (_rxSlot >= 0 && _rxStart == _rxEnd && _table[_rxSlot].Length - (uint)_rxDone >= DirectReceiveThreshold)
            {
                ref var s = ref _table[_rxSlot];
                n = _socket.Receive(s.Buffer.Span.Slice(_rxDone, (int)s.Length - _rxDone), SocketFlags.None, out err);
                if (err == SocketError.Success && n > 0)
                {
                    _rxDone += n;
                    if (_rxDone == (int)s.Length)
                    {
                        int done = _rxSlot;
                        _rxSlot = -1;
                        Complete(done, NbdError.None);
                        if (epoch != _epoch) return;
                    }
                    continue;
                }
            }
            else
            {
                if (_rxStart > 0)
                {
                    _rx.AsSpan(_rxStart, _rxEnd - _rxStart).CopyTo(_rx);
                    _rxEnd -= _rxStart;
                    _rxStart = 0;
                }
                n = _socket.Receive(_rx.AsSpan(_rxEnd), SocketFlags.None, out err);
                if (err == SocketError.Success && n > 0) { _rxEnd += n; continue; }
            }
            if (err == SocketError.WouldBlock) return;
            if (err != SocketError.Success) { Fail($"receive failed: {err}"); return; }
            Fail(_disconnectSent ? "server closed the connection after NBD_CMD_DISC"
                : _rxSlot >= 0 || _rxEnd > _rxStart ? "server closed the connection in the middle of a reply (truncated reply)"
                : "server closed the connection");
            return;
        }
    }

    private static int MapError(uint error)
    {
        if (error == 0) return NbdError.None;
        // NOTE: proto.md "Error values": any value is possible on the wire; keep it positive so it never looks
        // like our local ConnectionLost code.
        return error > int.MaxValue ? NbdError.EIO : (int)error;
    }

    private void Complete(int index, int error)
    {
        ulong token = _table[index].UserToken;
        _table.Release(index);
        _sink.OnCompleted(token, error);
    }
}
