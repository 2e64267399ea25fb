using System.Net.Sockets;
using BlkTap.Nbd.Internal;

namespace BlkTap.Nbd;

// Sending: request headers are staged and sent in batches; a small WRITE payload is copied into the stage, a large
// one is sent straight from the caller's buffer.
public sealed partial class NbdClient
{
    /// <summary>The socket became writable: same as <see cref="Flush"/>.</summary>
    public bool OnWritable() => Flush();

    /// <summary>
    /// Sends as much queued data as the socket takes without blocking. Returns true when everything queued was
    /// sent (or the client is broken), false when the loop should wait for the socket to become writable.
    /// May deliver completions (DISC, or every pending request if the connection fails).
    /// </summary>
    public bool Flush()
    {
        if (_disposed) return true;
        int epoch = _epoch;
        while (_socket != null)
        {
            if (_stageEnd > _stageStart)
            {
                int n = _socket.Send(_stage.AsSpan(_stageStart, _stageEnd - _stageStart), SocketFlags.None, out var err);
                if (err == SocketError.WouldBlock) return false;
                if (err != SocketError.Success) { Fail($"send failed: {err}"); return true; }
                _stageStart += n;
                if (_stageStart == _stageEnd) _stageStart = _stageEnd = 0;
                continue;
            }
            if (_directSlot >= 0)
            {
                ref var s = ref _table[_directSlot];
                var data = s.Buffer.Span.Slice(_directSent, (int)s.Length - _directSent);
                int n = _socket.Send(data, SocketFlags.None, out var err);
                if (err == SocketError.WouldBlock) return false;
                if (err != SocketError.Success) { Fail($"send failed: {err}"); return true; }
                _directSent += n;
                if (_directSent == (int)s.Length) _directSlot = -1;
                continue;
            }
            if (_sendQueue.Count == 0) return true;
            FillStage();
            if (epoch != _epoch) return true;
        }
        return true;
    }

    private void FillStage()
    {
        while (_sendQueue.Count > 0 && StageSize - _stageEnd >= NbdMagic.RequestHeaderSize)
        {
            int index = _sendQueue.Dequeue();
            ref var s = ref _table[index];
            new NbdRequestHeader(s.Flags, s.Command, NbdRequestTable.CookieOf(index, s.Generation), s.Offset, s.Length)
                .Write(_stage.AsSpan(_stageEnd));
            _stageEnd += NbdMagic.RequestHeaderSize;
            s.Sent = true;
            if (s.Command == NbdCommand.Write && s.Length > 0)
            {
                if (s.Length <= CopyPayloadLimit && s.Length <= StageSize - _stageEnd)
                {
                    s.Buffer.Span[..(int)s.Length].CopyTo(_stage.AsSpan(_stageEnd));
                    _stageEnd += (int)s.Length;
                }
                else
                {
                    _directSlot = index;
                    _directSent = 0;
                    return;
                }
            }
            else if (s.Command == NbdCommand.Disconnect)
            {
                // NOTE: proto.md NBD_CMD_DISC: the server sends no reply; complete it locally.
                ulong token = s.UserToken;
                _table.Release(index);
                _sink.OnCompleted(token, NbdError.None);
                return;
            }
        }
    }
}
