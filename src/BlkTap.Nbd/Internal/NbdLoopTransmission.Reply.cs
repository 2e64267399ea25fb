using BlkTap.Linux;

namespace BlkTap.Nbd.Internal;

// Running requests (straight to the loop's session, or awaiting the backend) and writing their replies: one gathered
// write per pass, a large reply at once.
internal sealed unsafe partial class NbdLoopTransmission
{
    private void SubmitDirect(NbdSlot slot, BlkifOperation op, bool fua)
    {
        var r = slot.Request;
        r.Operation = op;
        r.Sector = slot.Command.Offset / Sector;
        r.Data = slot.Data;
        r.Length = (int)slot.Command.Length;
        r.ForceUnitAccess = fua;
        r.DiscardSectors = 0;
        r.Status = BlkifStatus.Okay;
        r.AcceptFileReference = op == BlkifOperation.Read && r.Length >= FileReplyMinimum;
        _direct!.SubmitOnLoop(r);
    }

    /// <summary>Loop thread: a direct request was answered by the chain.</summary>
    internal void CompleteDirect(NbdSlot slot, BlkifStatus status)
    {
        if (status == BlkifStatus.Okay && slot.Request.FileHandle is { } file && !HoldFile(slot, file)) status = BlkifStatus.Error;
        Finish(slot, status switch
        {
            BlkifStatus.Okay => NbdError.None,
            BlkifStatus.NotSupported => NbdError.ENOTSUP,
            _ => NbdError.EIO,
        });
    }

    /// <summary>Keeps the file of a read answered by reference open until its reply is sent; false when it is already closed.</summary>
    private bool HoldFile(NbdSlot slot, Microsoft.Win32.SafeHandles.SafeFileHandle file)
    {
        bool added = false;
        try { file.DangerousAddRef(ref added); }
        catch (ObjectDisposedException) { }
        if (!added)
        {
            _log("the image was closed before a read's data could be sent; answering EIO");
            return false;
        }
        slot.File = file;
        return true;
    }

    private void Track(NbdSlot slot, ValueTask<int> pending)
    {
        if (pending.IsCompleted)
        {
            int err;
            try { err = Normalize(pending.Result); }
            catch (Exception e) { err = Threw(e, slot.Command.Command.ToString()); }
            Finish(slot, err);
            return;
        }
        _ = AwaitAsync(slot, pending);
    }

    private static int Normalize(int err) => err < 0 ? NbdError.EIO : err;

    private int Threw(Exception e, string what)
    {
        _log($"backend {what} threw {e.GetType().Name}: {e.Message}; answering EIO");
        return NbdError.EIO;
    }

    private void Finish(NbdSlot slot, int error)
    {
        slot.Error = error;
        Complete(slot);
    }

    /// <summary>Loop thread: the slot's outcome is in <see cref="NbdSlot.Error"/>; queue its reply.</summary>
    internal void Complete(NbdSlot slot)
    {
        if (_dead) { Release(slot); return; }
        new NbdSimpleReply((uint)slot.Error, slot.Command.Cookie).Write(new Span<byte>(slot.Header, NbdMagic.SimpleReplyHeaderSize));
        _out[(_outHead + _outCount) % _out.Length] = slot;
        _outCount++;
        if (slot.ReplyLength >= EagerReply && !_writeBlocked) { Send(); return; }
        ScheduleEndOfPass();
    }

    private void ScheduleEndOfPass()
    {
        if (_passEndScheduled) return;
        _passEndScheduled = true;
        _loop.RunAtEndOfPass(this);
    }

    // ------------------------------------------------------------------ writing

    /// <summary>Loop thread, once per pass with replies: write them all, then maybe close.</summary>
    public void OnEndOfPass()
    {
        _passEndScheduled = false;
        if (_closing) return;
        if (!_writeBlocked) Send();
        if ((_stopReading || _dead) && _inFlight == 0 && !_closing) Close();
    }

    private void Send()
    {
        if (_dead) return;
        _writeBlocked = false;
        while (_outCount > 0)
        {
            var head = _out[_outHead]!;
            if (head.File != null && _outOffset >= NbdMagic.SimpleReplyHeaderSize)
            {
                // The head's header is out: its data goes from the file.
                if (!SendFromFile(head)) break;
                continue;
            }
            int segs = 0;
            long total = 0;
            for (int i = 0; i < _outCount && segs + 2 <= MaxSegments; i++)
            {
                var s = _out[(_outHead + i) % _out.Length]!;
                int skip = i == 0 ? _outOffset : 0;
                int len = s.ReplyLength;
                if (skip < NbdMagic.SimpleReplyHeaderSize)
                {
                    _iov[segs++] = new IoSegment { Address = (nint)(s.Header + skip), Length = NbdMagic.SimpleReplyHeaderSize - skip };
                    total += NbdMagic.SimpleReplyHeaderSize - skip;
                    skip = NbdMagic.SimpleReplyHeaderSize;
                }
                // A reply whose data is in a file ends the gathered write at its header; sendfile sends the rest.
                if (s.File != null) break;
                if (len > skip)
                {
                    _iov[segs++] = new IoSegment { Address = s.Data + (skip - NbdMagic.SimpleReplyHeaderSize), Length = len - skip };
                    total += len - skip;
                }
            }
            long n = NonBlockingIo.WriteGather(_fd, new ReadOnlySpan<IoSegment>(_iov, segs));
            if (n == NonBlockingIo.WouldBlock) { _writeBlocked = true; break; }
            if (n < 0)
            {
                _log($"send failed: {NonBlockingIo.Describe(n)}");
                Dead();
                return;
            }
            Consume(n);
            if (n < total) { _writeBlocked = true; break; } // the socket buffer is full: wait until it is writable
        }
        if (_throttled && !_stopReading && _inFlight < _maxInFlight && _buffered < MaxBufferedBytes)
        {
            _throttled = false;
            Pump();
        }
        else UpdateInterest();
    }

    /// <summary>
    /// Sends what is left of the head reply's data from its file; false when the socket is full (or the connection
    /// died). A file that ends early (shrunk under the export) sends zeroes for the rest, as a read into a buffer would.
    /// </summary>
    private bool SendFromFile(NbdSlot head)
    {
        int done = _outOffset - NbdMagic.SimpleReplyHeaderSize;
        int rest = (int)head.Command.Length - done;
        long n = NonBlockingIo.SendFile(_fd, head.File!, head.Request.FileOffset + done, rest);
        if (n == NonBlockingIo.WouldBlock) { _writeBlocked = true; return false; }
        if (n == 0)
        {
            // Past the file's end: zeroes from the slot's buffer, sent by the gathered write.
            new Span<byte>((byte*)head.Data + done, rest).Clear();
            head.DropFile();
            return true;
        }
        if (n < 0)
        {
            _log($"sendfile failed: {NonBlockingIo.Describe(n)}");
            Dead();
            return false;
        }
        if (n == rest) _counters?.ReplyFromFile();
        Consume(n);
        if (n < rest) { _writeBlocked = true; return false; }
        return true;
    }

    private void Consume(long n)
    {
        while (n > 0)
        {
            var s = _out[_outHead]!;
            int rest = s.ReplyLength - _outOffset;
            if (n < rest) { _outOffset += (int)n; return; }
            n -= rest;
            _outOffset = 0;
            _out[_outHead] = null;
            _outHead = (_outHead + 1) % _out.Length;
            _outCount--;
            Release(s);
        }
    }
}
