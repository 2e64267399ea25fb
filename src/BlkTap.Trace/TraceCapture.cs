using System.Diagnostics;
using System.IO.Hashing;

namespace BlkTap.Trace;

/// <summary>
/// Records every request a tap sees into a native trace (docs/trace-format.md): submit and complete
/// times in ns relative to the first request, session id, operation, sector, length, status and,
/// optionally, the XxHash64 of the data (a write's data as submitted, a read's data as returned).
/// The <c>dump</c> tap's <c>trace=FILE</c> option uses it; any hook may.
/// </summary>
/// <remarks>
/// <para>Threading: loop thread only (call <see cref="OnRequest"/> from a request hook and
/// <see cref="OnResponse"/> from a response hook of the same tap). <see cref="Complete"/> from the thread
/// that disposes the tap, after the loop stopped.</para>
/// <para>Records are written in submit order although requests complete in any order: a request's
/// record waits in a reorder window until every earlier request has completed. The window is a
/// power-of-two ring that grows when needed (no allocation per request in the steady state); a
/// request that never completes (its session closed while it was at the backend) is written by
/// <see cref="Complete"/> with <see cref="TraceRecordFlags.NoCompletion"/>, and holds later records
/// back until then. On the loop only <see cref="TraceWriter.Append"/> runs, which does no I/O.</para>
/// </remarks>
public sealed class TraceCapture : IDisposable
{
    private struct Pending
    {
        public long SubmitTimestamp;
        public long CompleteTimestamp;
        public ulong Sector;
        public ulong Hash;
        public uint Session;
        public uint Length;
        public BlkifOperation Operation;
        public BlkifStatus Status;
        public bool HasHash;
        public bool Done;
    }

    private readonly TraceWriter _writer;
    private readonly bool _hash;
    private readonly XxHash64 _hasher = new();
    private readonly double _nsPerTick = 1e9 / Stopwatch.Frequency;
    private Pending[] _window = new Pending[256];
    private long _head; // oldest sequence not yet appended
    private long _tail; // next sequence to assign
    private long _t0 = -1;
    private long _lastFlush;
    private bool _completed;

    /// <summary>Creates a capture writing to <paramref name="writer"/>, which it owns from now on.</summary>
    /// <param name="writer">The trace writer.</param>
    /// <param name="hashData">Whether to record the XxHash64 of each request's data.</param>
    public TraceCapture(TraceWriter writer, bool hashData)
    {
        _writer = writer ?? throw new ArgumentNullException(nameof(writer));
        _hash = hashData;
    }

    /// <summary>Requests recorded (appended or waiting in the reorder window).</summary>
    public long Requests => _tail;
    /// <summary>Records the writer dropped (only with <see cref="TraceFullMode.DropNewest"/>).</summary>
    public long DroppedRecords => _writer.DroppedRecords;

    /// <summary>Loop thread: a request entered the tap; remembers it (and hashes a write's data).</summary>
    public void OnRequest(TapRequest request)
    {
        if (_completed) return;
        if (_t0 < 0) { _t0 = request.SubmitTimestamp; _lastFlush = _t0; }
        if (_tail - _head == _window.Length) Grow();
        long seq = _tail++;
        ref var p = ref _window[seq & (_window.Length - 1)];
        p.SubmitTimestamp = request.SubmitTimestamp;
        p.CompleteTimestamp = 0;
        p.Session = (uint)request.Session.Id;
        p.Operation = request.Operation;
        p.Sector = request.Sector;
        p.Length = LengthOf(request);
        p.Status = BlkifStatus.Okay;
        p.Done = false;
        p.HasHash = false;
        p.Hash = 0;
        if (_hash && request.HasData && request.Operation != BlkifOperation.Read)
        {
            p.Hash = HashData(request);
            p.HasHash = true;
        }
        request.SetTag(this, seq);
    }

    /// <summary>Loop thread: a response is on its way to the frontend; completes its record (and hashes a read's data).</summary>
    public void OnResponse(TapRequest request)
    {
        if (_completed || !request.TryGetTag(this, out long seq) || seq < _head || seq >= _tail) return;
        ref var p = ref _window[seq & (_window.Length - 1)];
        long now = Stopwatch.GetTimestamp();
        p.CompleteTimestamp = now;
        p.Status = request.Status;
        p.Done = true;
        if (_hash && request.Operation == BlkifOperation.Read && request.Status == BlkifStatus.Okay && request.HasData)
        {
            p.Hash = HashData(request);
            p.HasHash = true;
        }
        while (_head < _tail)
        {
            ref var h = ref _window[_head & (_window.Length - 1)];
            if (!h.Done) break;
            Append(h, completed: true);
            _head++;
        }
        // Hand partial blocks over about once a second so a long capture reaches the file (no I/O here).
        if (now - _lastFlush > Stopwatch.Frequency)
        {
            _lastFlush = now;
            _writer.Flush();
        }
    }

    /// <summary>Writes the records still waiting (uncompleted ones with <see cref="TraceRecordFlags.NoCompletion"/>) and completes the file. Idempotent.</summary>
    /// <exception cref="IOException">The trace could not be written.</exception>
    public void Complete()
    {
        if (_completed) return;
        _completed = true;
        try
        {
            for (; _head < _tail; _head++)
            {
                ref var p = ref _window[_head & (_window.Length - 1)];
                Append(p, p.Done);
            }
        }
        finally
        {
            _writer.Complete();
        }
    }

    /// <summary>Same as <see cref="Complete"/>.</summary>
    public void Dispose() => Complete();

    private void Append(in Pending p, bool completed)
    {
        ulong submit = ToNs(p.SubmitTimestamp);
        ulong complete = completed ? Math.Max(submit, ToNs(p.CompleteTimestamp)) : submit;
        // Statuses other than the three blkif ones cannot reach a frontend (blkfront maps them to ERROR).
        var status = p.Status is BlkifStatus.Okay or BlkifStatus.NotSupported ? p.Status : BlkifStatus.Error;
        _writer.Append(new TraceRecord(submit, complete, p.Session, p.Operation, p.Sector, p.Length, status,
            p.HasHash ? p.Hash : null, completed));
    }

    private ulong ToNs(long timestamp) => timestamp <= _t0 ? 0 : (ulong)((timestamp - _t0) * _nsPerTick);

    private static uint LengthOf(TapRequest r)
    {
        if (r.Operation == BlkifOperation.Discard)
            return r.SectorCount >= uint.MaxValue / 512 ? uint.MaxValue / 512 * 512 : (uint)r.SectorCount * 512;
        return (uint)r.ByteCount;
    }

    private ulong HashData(TapRequest r)
    {
        _hasher.Reset();
        for (int i = 0; i < r.SegmentCount; i++) _hasher.Append(r.SegmentData(i));
        return _hasher.GetCurrentHashAsUInt64();
    }

    private void Grow()
    {
        var bigger = new Pending[_window.Length * 2];
        for (long s = _head; s < _tail; s++) bigger[s & (bigger.Length - 1)] = _window[s & (_window.Length - 1)];
        _window = bigger;
    }
}
