using System.Runtime.InteropServices;
using BlkTap.Linux;

namespace BlkTap.Nbd.Internal;

/// <summary>
/// The transmission phase of one NBD connection, run entirely on a <see cref="TapRuntime"/> loop that watches the
/// socket itself (<see cref="TapRuntime.AttachPoll(int, PollEvents, Action{PollEvents})"/>): the loop thread reads
/// every request that has arrived, starts it, and at the end of the pass writes every reply that is ready with one
/// gathered write. When the export is a session of the same runtime (<c>blktap nbd serve</c>), aligned reads and
/// writes become <see cref="BufferRequest"/>s with no thread hand-off at all: socket, hooks, image and reply all run
/// on one thread, and one wake-up serves a whole batch of requests.
/// </summary>
/// <remarks>
/// Threading: loop thread only, except <see cref="NbdSlot.CompleteOnLoop"/>, which a backend completing on another
/// thread posts to the loop. Memory: one receive buffer, one iovec array and one page-aligned buffer per slot, all
/// native, freed on the loop once no request is in flight. A request's slot is released when its reply has been
/// written (or the connection died), so a client that does not read its replies is throttled, not buffered.
/// </remarks>
internal sealed unsafe partial class NbdLoopTransmission : IEndOfPassHandler
{
    private const int ReceiveSize = 256 * 1024;
    private const int MaxSegments = 1024; // NOTE: IOV_MAX is 1024 on Linux (<limits.h> via bits/xopen_lim.h).
    private const long MaxBufferedBytes = 64L << 20;
    private const int Sector = BlkifConstants.SectorSize;

    private readonly TapRuntime _loop;
    private readonly int _fd;
    private readonly INbdExportBackend _backend;
    private readonly BufferSession? _direct;
    private readonly ulong _size;
    private readonly int _maxInFlight;
    private readonly Action<string> _log;
    private readonly CancellationToken _abort;
    private readonly TaskCompletionSource _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private byte* _recv;
    private int _head, _tail;
    private IoSegment* _iov;
    private readonly Stack<NbdSlot> _free = new();
    private readonly List<NbdSlot> _all = new();
    private readonly NbdSlot?[] _out;
    private int _outHead, _outCount, _outOffset;
    private int _inFlight;
    private long _buffered;
    private NbdSlot? _payload;
    private PollRegistration? _reg;
    // Replies are written after every this many requests of a batch (and at the end of the pass). Measured with fio
    // 4 KiB random I/O at iodepth 32: 4, 8 and 32 were within noise for reads; 8 was best for writes.
    private const int FlushEvery = 8;
    // A reply at least this long is written as soon as it is ready (if the socket has room), not at the end of the
    // pass: its data was just copied into the slot's buffer and is still in this core's cache, so the socket's copy of
    // it runs from the cache instead of memory. fio 1 MiB sequential reads, iodepth 32, on this 2-core VM: 3.2-3.3k
    // MiB/s gathered per pass (8 MiB between writes), 3.6k eager. Tried and not kept: a second thread per connection
    // writing large replies (the loop and the sender each ran at about 55 %, 3.0-3.1k MiB/s: the data crossed cores).
    private const int EagerReply = 64 * 1024;
    private bool _inPump;
    private bool _passEndScheduled, _stopReading, _dead, _closing, _throttled, _writeBlocked, _freed;

    /// <param name="loop">The loop that runs this connection (its waiter must watch descriptors).</param>
    /// <param name="fd">The connected socket, already non-blocking; the caller closes it after <see cref="Completion"/>.</param>
    /// <param name="backend">The export.</param>
    /// <param name="maxInFlight">Requests in flight at once (reading pauses beyond that).</param>
    /// <param name="leftover">Bytes the handshake read past its end (pipelined first requests).</param>
    /// <param name="log">Diagnostics.</param>
    /// <param name="abort">Cancels the final flush when the server runs out of patience.</param>
    public NbdLoopTransmission(TapRuntime loop, int fd, INbdExportBackend backend, int maxInFlight, ReadOnlySpan<byte> leftover,
        Action<string> log, CancellationToken abort)
    {
        _loop = loop;
        _fd = fd;
        _backend = backend;
        _size = backend.Size;
        _maxInFlight = maxInFlight;
        _log = log;
        _abort = abort;
        // The direct path: the export is a session on this very loop.
        if (backend is NbdExportSessionBackend s && ReferenceEquals(s.Session.Runtime, loop)) _direct = s.Session;
        _out = new NbdSlot?[maxInFlight];
        if (leftover.Length > ReceiveSize) throw new ArgumentException("leftover larger than the receive buffer", nameof(leftover));
        _recv = (byte*)NativeMemory.AlignedAlloc(ReceiveSize, 4096);
        _iov = (IoSegment*)NativeMemory.Alloc((nuint)(MaxSegments * sizeof(IoSegment)));
        leftover.CopyTo(new Span<byte>(_recv, ReceiveSize));
        _tail = leftover.Length;
    }

    /// <summary>Completes once the connection has stopped, every request has finished and the final flush is done.</summary>
    public Task Completion => _completion.Task;

    /// <summary>True when reads and writes go straight to the loop's session (no thread hand-off).</summary>
    public bool Direct => _direct != null;

    /// <summary>Loop thread: starts watching the socket and serves what already arrived.</summary>
    public void Start()
    {
        try { _reg = _loop.AttachPoll(_fd, PollEvents.Readable, OnReady); }
        catch (Exception e) when (e is NotSupportedException or InvalidOperationException or IOException)
        {
            _log($"cannot watch the socket: {e.Message}");
            Dead();
            return;
        }
        Pump();
    }

    /// <summary>Loop thread: graceful stop (server stopping): no new requests; in-flight ones finish and are answered.</summary>
    public void RequestStop() => StopReading();

    /// <summary>Loop thread: out of patience: pending replies are dropped; the connection closes when in-flight requests end.</summary>
    public void Abort() => Dead();

    // ------------------------------------------------------------------ reading

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

    // ------------------------------------------------------------------ running requests

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
        _direct!.SubmitOnLoop(r);
    }

    /// <summary>Loop thread: a direct request was answered by the chain.</summary>
    internal void CompleteDirect(NbdSlot slot, BlkifStatus status) =>
        Finish(slot, status switch
        {
            BlkifStatus.Okay => NbdError.None,
            BlkifStatus.NotSupported => NbdError.ENOTSUP,
            _ => NbdError.EIO,
        });

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
                    skip = NbdMagic.SimpleReplyHeaderSize;
                }
                if (len > skip)
                    _iov[segs++] = new IoSegment { Address = s.Data + (skip - NbdMagic.SimpleReplyHeaderSize), Length = len - skip };
                total += len - (i == 0 ? _outOffset : 0);
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

    // ------------------------------------------------------------------ slots and state

    private NbdSlot Rent(in NbdRequestHeader req, int bytes)
    {
        if (!_free.TryPop(out var slot))
        {
            slot = new NbdSlot(this);
            _all.Add(slot);
        }
        slot.Command = req;
        slot.Error = 0;
        slot.PresetError = 0;
        slot.PayloadDone = 0;
        slot.Budget = bytes;
        _buffered += bytes;
        _inFlight++;
        return slot;
    }

    private void Release(NbdSlot slot)
    {
        _inFlight--;
        _buffered -= slot.Budget;
        slot.Budget = 0;
        slot.Trim();
        _free.Push(slot);
        if ((_stopReading || _dead) && _inFlight == 0) ScheduleEndOfPass(); // closes at the end of the pass
    }

    private void StopReading()
    {
        if (_stopReading) return;
        _stopReading = true;
        if (_payload != null) { var p = _payload; _payload = null; Release(p); }
        UpdateInterest();
        if (_inFlight == 0) ScheduleEndOfPass();
    }

    private void Dead()
    {
        if (_dead) return;
        _dead = true;
        _stopReading = true;
        if (_payload != null) { var p = _payload; _payload = null; Release(p); }
        while (_outCount > 0)
        {
            var s = _out[_outHead]!;
            _out[_outHead] = null;
            _outHead = (_outHead + 1) % _out.Length;
            _outCount--;
            Release(s);
        }
        _outOffset = 0;
        Detach();
        ScheduleEndOfPass();
    }

    private void UpdateInterest()
    {
        if (_dead || _closing) { Detach(); return; }
        var want = (!_stopReading && !_throttled ? PollEvents.Readable : PollEvents.None)
                 | (_writeBlocked && _outCount > 0 ? PollEvents.Writable : PollEvents.None);
        // Nothing left to wait for on the socket (reading stopped, nothing blocked): stop watching it, so that a
        // hang-up does not wake the loop again and again while the last requests finish.
        if (want == PollEvents.None && _stopReading) { Detach(); return; }
        if (_reg != null) { _reg.SetInterest(want); return; }
        try { _reg = _loop.AttachPoll(_fd, want, OnReady); }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            _log($"cannot watch the socket: {e.Message}");
            Dead();
        }
    }

    private void Detach()
    {
        var r = _reg;
        _reg = null;
        r?.Dispose();
    }

    /// <summary>Loop thread, at the end of a pass: nothing in flight and no more reading: free, then flush off the loop.</summary>
    private void Close()
    {
        // Every queued reply belongs to a slot in flight, so with none in flight nothing is left to write.
        _closing = true;
        Detach();
        FreeNative();
        _ = FinalFlushAsync();
    }

    private void FreeNative()
    {
        if (_freed) return;
        _freed = true;
        foreach (var s in _all) s.Free();
        _all.Clear();
        _free.Clear();
        NativeMemory.AlignedFree(_recv);
        NativeMemory.Free(_iov);
        _recv = null;
        _iov = null;
    }
}
