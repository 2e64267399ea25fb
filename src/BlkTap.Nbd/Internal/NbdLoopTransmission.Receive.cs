using BlkTap.Linux;

namespace BlkTap.Nbd.Internal;

// Reading: takes requests off the socket and starts them (on the loop's session directly, or on the backend).
internal sealed unsafe partial class NbdLoopTransmission
{
    private void OnReady(PollEvents events)
    {
        bool wantRead = !_stopReading && !_throttled && !_dead;
        if ((events & PollEvents.Readable) != 0 && !wantRead && !_dead)
        {
            // Not reading, yet reported: an error or a hang-up of both directions, so no reply can be delivered.
            if (_outCount > 0 || _inFlight > 0) _log("client hung up with requests in flight");
            Dead();
            return;
        }
        if ((events & PollEvents.Writable) != 0) Send();
        if ((events & PollEvents.Readable) != 0) Pump();
    }

    /// <summary>Reads and starts requests until the socket is drained, the connection is throttled, or reading stopped.</summary>
    private void Pump()
    {
        if (_inPump) return;
        _inPump = true;
        try { PumpCore(); }
        finally { _inPump = false; }
        UpdateInterest();
    }

    private void PumpCore()
    {
        bool drained = false;
        int taken = 0;
        while (!_stopReading && !_dead && !_throttled)
        {
            if (_payload != null)
            {
                if (!ReadPayload(ref drained)) break;
                continue;
            }
            int avail = _tail - _head;
            if (avail >= NbdMagic.RequestHeaderSize)
            {
                TakeRequest();
                // Hand the client its first replies while the rest of the batch runs: it can send more meanwhile
                // (replying only at the end of a long batch makes client and server take turns instead of overlapping).
                if (++taken % FlushEvery == 0 && _outCount > 0 && !_writeBlocked) Send();
                continue;
            }
            if (drained) break;
            if (_head > 0)
            {
                Buffer.MemoryCopy(_recv + _head, _recv, ReceiveSize, avail);
                _head = 0;
                _tail = avail;
            }
            int space = ReceiveSize - _tail;
            int n = NonBlockingIo.Read(_fd, (nint)(_recv + _tail), space);
            if (n > 0)
            {
                _tail += n;
                drained = n < space; // a short read emptied the socket: parse, then wait for the next wake-up
                continue;
            }
            if (n == NonBlockingIo.WouldBlock) break;
            if (n == 0)
            {
                if (avail > 0) _log($"client closed the connection after {avail} of {NbdMagic.RequestHeaderSize} bytes of a request");
                StopReading();
                break;
            }
            _log($"receive failed: {NonBlockingIo.Describe(n)}");
            Dead();
            break;
        }
    }

    /// <summary>Feeds the pending write payload; false when the socket has nothing more now.</summary>
    private bool ReadPayload(ref bool drained)
    {
        var s = _payload!;
        int want = (int)s.Command.Length - s.PayloadDone;
        int avail = _tail - _head;
        if (avail > 0)
        {
            int take = Math.Min(avail, want);
            Buffer.MemoryCopy(_recv + _head, (byte*)s.Data + s.PayloadDone, want, take);
            _head += take;
            s.PayloadDone += take;
        }
        else
        {
            if (drained) return false;
            // The rest of a large payload goes straight into the slot's buffer.
            int n = NonBlockingIo.Read(_fd, s.Data + s.PayloadDone, want);
            if (n == NonBlockingIo.WouldBlock) return false;
            if (n == 0)
            {
                _log($"client closed the connection after {s.PayloadDone} of {s.Command.Length} bytes of a WRITE payload");
                StopReading();
                return false;
            }
            if (n < 0)
            {
                _log($"receive failed: {NonBlockingIo.Describe(n)}");
                Dead();
                return false;
            }
            s.PayloadDone += n;
            if (n < want) drained = true;
        }
        if (s.PayloadDone < s.Command.Length) return !drained;
        _payload = null;
        Written(s);
        return true;
    }

    private void TakeRequest()
    {
        if (!NbdRequestHeader.TryRead(new ReadOnlySpan<byte>(_recv + _head, NbdMagic.RequestHeaderSize), out var req, out var error))
        {
            _log(error + "; disconnecting");
            StopReading();
            return;
        }
        if (req.Command == NbdCommand.Disconnect)
        {
            // NOTE: proto.md NBD_CMD_DISC: finish outstanding requests, then close; no reply.
            _head += NbdMagic.RequestHeaderSize;
            StopReading();
            return;
        }
        if (req.Command == NbdCommand.Write && req.Length > NbdMagic.MaxPayload)
        {
            // NOTE: proto.md "Block size constraints": a write payload beyond the maximum may be met with a hard
            // disconnect, since the payload cannot be trusted or skipped cheaply.
            _log($"WRITE of {req.Length} bytes exceeds the 32 MiB limit; disconnecting");
            StopReading();
            return;
        }
        int bytes = req.Command is NbdCommand.Read or NbdCommand.Write && req.Length <= NbdMagic.MaxPayload ? (int)req.Length : 0;
        if (_inFlight >= _maxInFlight || (_inFlight > 0 && _buffered + bytes > MaxBufferedBytes))
        {
            _throttled = true; // the header stays in the buffer until a slot frees
            return;
        }
        _head += NbdMagic.RequestHeaderSize;
        var slot = Rent(req, bytes);
        bool fua = (req.Flags & NbdCommandFlags.Fua) != 0;
        bool inRange = req.Offset <= _size && req.Length <= _size - req.Offset;
        switch (req.Command)
        {
            case NbdCommand.Write:
            {
                // NOTE: proto.md "Error values": EPERM on a read-only export, ENOSPC for writes past the end; the
                // payload is still consumed first.
                slot.PresetError = _backend.ReadOnly ? NbdError.EPERM : !inRange ? NbdError.ENOSPC : 0;
                slot.EnsureCapacity(bytes);
                int take = Math.Min(_tail - _head, bytes);
                if (take > 0) Buffer.MemoryCopy(_recv + _head, (void*)slot.Data, bytes, take);
                _head += take;
                slot.PayloadDone = take;
                if (take < bytes) { _payload = slot; return; }
                Written(slot);
                return;
            }
            case NbdCommand.Read:
                if (req.Length > NbdMagic.MaxPayload || !inRange) { Finish(slot, NbdError.EINVAL); return; }
                slot.EnsureCapacity(bytes);
                if (_direct != null && Aligned(req)) { SubmitDirect(slot, BlkifOperation.Read, false); return; }
                ValueTask<int> read;
                try { read = _backend.ReadAsync(req.Offset, slot.Memory.Reset(slot.Data, bytes), CancellationToken.None); }
                catch (Exception e) { Finish(slot, Threw(e, "READ")); return; }
                Track(slot, read);
                return;
            case NbdCommand.Flush:
            case NbdCommand.Trim:
            case NbdCommand.WriteZeroes:
                if (req.Command != NbdCommand.Flush && (_backend.ReadOnly || !inRange))
                {
                    Finish(slot, _backend.ReadOnly ? NbdError.EPERM : req.Command == NbdCommand.WriteZeroes ? NbdError.ENOSPC : NbdError.EINVAL);
                    return;
                }
                ValueTask<int> other;
                try
                {
                    other = req.Command switch
                    {
                        NbdCommand.Flush => _backend.FlushAsync(CancellationToken.None),
                        NbdCommand.Trim => _backend.TrimAsync(req.Offset, req.Length, fua, CancellationToken.None),
                        _ => _backend.WriteZeroesAsync(req.Offset, req.Length, fua, (req.Flags & NbdCommandFlags.NoHole) == 0, CancellationToken.None),
                    };
                }
                catch (Exception e) { Finish(slot, Threw(e, req.Command.ToString())); return; }
                Track(slot, other);
                return;
            default:
                // NOTE: proto.md: an unknown or unnegotiated command is answered EINVAL.
                Finish(slot, NbdError.EINVAL);
                return;
        }
    }

    private static bool Aligned(in NbdRequestHeader r) => r.Length > 0 && r.Offset % Sector == 0 && r.Length % Sector == 0;

    /// <summary>A write's payload is complete: refuse it, or send it on.</summary>
    private void Written(NbdSlot slot)
    {
        if (slot.PresetError != 0) { Finish(slot, slot.PresetError); return; }
        var req = slot.Command;
        bool fua = (req.Flags & NbdCommandFlags.Fua) != 0;
        if (_direct != null && Aligned(req)) { SubmitDirect(slot, BlkifOperation.Write, fua); return; }
        ValueTask<int> write;
        try { write = _backend.WriteAsync(req.Offset, slot.Memory.Reset(slot.Data, (int)req.Length), fua, CancellationToken.None); }
        catch (Exception e) { Finish(slot, Threw(e, "WRITE")); return; }
        Track(slot, write);
    }
}
