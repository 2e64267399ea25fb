using System.Runtime.InteropServices;
using BlkTap.Linux;
using BlkTap.Loop;

namespace BlkTap.Nbd.Internal;

/// <summary>
/// The transmission phase of one NBD connection, run entirely on an event loop that watches the socket itself
/// (<see cref="IEventLoop.Attach(int, PollEvents, Action{PollEvents})"/>): the loop thread reads
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

    private readonly IEventLoop _loop;
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
    // Replies are written after every this many requests of a batch (and at the end of the pass): the client gets its
    // first replies while the rest of the batch runs (bench/RESULTS.md has the figures behind the number).
    private const int FlushEvery = 8;
    // A reply at least this long is written as soon as it is ready (if the socket has room), not at the end of the
    // pass: its data was just copied into the slot's buffer and is still in this core's cache, so the socket's copy of
    // it runs from the cache instead of memory (bench/RESULTS.md, NBD 1 MiB sequential read).
    private const int EagerReply = 64 * 1024;
    // A direct read at least this long may be answered with a range of the image file, sent with sendfile(2): the page
    // cache's pages go to the socket by reference, saving the copy into the slot and the copy out of it (a probe on
    // this VM: 1 MiB costs 82 us of CPU that way against 191-217 with pread and write; 16 KiB 4.8 against 11.8). Below
    // it the extra system call per reply would cost more than the copies it saves in a gathered write.
    internal const int FileReplyMinimum = 32 * 1024;
    private readonly NbdServerCounters? _counters;
    private bool _inPump;
    private bool _passEndScheduled, _stopReading, _dead, _closing, _throttled, _writeBlocked, _freed;

    /// <param name="loop">The loop that runs this connection (its waiter must watch descriptors).</param>
    /// <param name="fd">The connected socket, already non-blocking; the caller closes it after <see cref="Completion"/>.</param>
    /// <param name="backend">The export.</param>
    /// <param name="maxInFlight">Requests in flight at once (reading pauses beyond that).</param>
    /// <param name="leftover">Bytes the handshake read past its end (pipelined first requests).</param>
    /// <param name="log">Diagnostics.</param>
    /// <param name="abort">Cancels the final flush when the server runs out of patience.</param>
    /// <param name="counters">The server's totals (replies sent from a file), or null.</param>
    public NbdLoopTransmission(IEventLoop loop, int fd, INbdExportBackend backend, int maxInFlight, ReadOnlySpan<byte> leftover,
        Action<string> log, CancellationToken abort, NbdServerCounters? counters = null)
    {
        _counters = counters;
        _loop = loop;
        _fd = fd;
        _backend = backend;
        _size = backend.Size;
        _maxInFlight = maxInFlight;
        _log = log;
        _abort = abort;
        // The direct path: the export is a session on this very loop.
        if (backend is NbdExportSessionBackend s && ReferenceEquals(s.Session.Runtime.Loop, loop)) _direct = s.Session;
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
        try { _reg = _loop.Attach(_fd, PollEvents.Readable, OnReady); }
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
        slot.DropFile();
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
        try { _reg = _loop.Attach(_fd, want, OnReady); }
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