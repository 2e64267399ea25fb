using System.Buffers;
using System.Diagnostics;
using System.Numerics;
using System.Runtime.ExceptionServices;
using BlkTap.Emulator.Internal;

namespace BlkTap.Emulator;

public sealed partial class ReplayDriver
{
    /// <summary>
    /// The batch path of a replay without timing: everything runs on the emulator's scheduler. A refill issues, in
    /// sequence order, every request that may go (queue depth, no overlap with a modifying request in flight), stages
    /// them per frontend and hands each frontend its batch with one <see cref="BlkFront.SubmitBatch"/>; completions free
    /// their slot and post one refill for all completions of an event. Requests live in a fixed slot table (token = slot
    /// index): no task and no allocation per request. The rules are the task path's: the same admission test
    /// (<see cref="Conflicts"/>'s), the same write sequence numbers, the same skipped requests, the same observer calls.
    /// </summary>
    /// <remarks>Threading: created on the caller's thread; <see cref="RunAsync"/> posts the first refill; every other
    /// member runs on the scheduler, so the observer is called from one thread at a time without the driver's lock.</remarks>
    private sealed class BatchRun : IBlkFrontBatchCompletion
    {
        private struct Slot
        {
            public ReplayRequest Request;
            public long Index;
            public ulong Sequence;
            public long Started;
            public byte[]? Buffer;
            public int Length;
            public int ActivePosition;
            public bool FlushAfterWrite;
        }

        private readonly ReplayDriver _driver;
        private readonly IEnumerator<ReplayRequest> _requests;
        private readonly CancellationToken _ct;
        private readonly XenEmulator _emulator;
        private readonly IReadOnlyList<BlkFront> _fronts;
        private readonly int _queueDepth;
        private readonly bool _sharedDisk;
        private readonly Slot[] _slots;
        private readonly int[] _freeSlots;
        private readonly byte[]?[] _slotBuffers;
        private readonly bool _wantsReadData;
        private readonly int[] _active;
        private readonly ActiveSpan[] _activeSpans;
        private readonly SpanOverlapFilter _inFlight = new();
        private readonly BlkFrontBatchRequest[][] _staged;
        private readonly int[] _stagedCount;
        private readonly Action _refill;
        private readonly TaskCompletionSource<TimeSpan> _done = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private int _freeCount, _activeCount;
        private long _index;
        private ReplayRequest _pending;
        private bool _hasPending, _noMore, _refilling, _finished;
        private int _refillPosted;
        private long _start;
        private ExceptionDispatchInfo? _failure;

        public BatchRun(ReplayDriver driver, IEnumerable<ReplayRequest> requests, CancellationToken ct)
        {
            _driver = driver;
            _requests = requests.GetEnumerator();
            _ct = ct;
            _emulator = driver._rig.Emulator;
            _fronts = driver._rig.Frontends;
            _queueDepth = driver._options.QueueDepth;
            _sharedDisk = driver._options.SharedDisk;
            int slots = checked(_queueDepth * _fronts.Count);
            _slots = new Slot[slots];
            _freeSlots = new int[slots];
            for (int i = 0; i < slots; i++) _freeSlots[i] = slots - 1 - i;
            _freeCount = slots;
            _slotBuffers = new byte[]?[slots];
            _wantsReadData = driver._observer.WantsReadData;
            _active = new int[slots];
            _activeSpans = new ActiveSpan[slots];
            _staged = new BlkFrontBatchRequest[_fronts.Count][];
            for (int i = 0; i < _staged.Length; i++) _staged[i] = new BlkFrontBatchRequest[_queueDepth];
            _stagedCount = new int[_fronts.Count];
            _refill = Refill;
        }

        public async Task<TimeSpan> RunAsync()
        {
            _start = Stopwatch.GetTimestamp();
            _refillPosted = 1;
            _emulator.Post(_refill);
            try { return await _done.Task; }
            finally { _requests.Dispose(); }
        }

        private void ScheduleRefill()
        {
            if (_refillPosted == 0)
            {
                _refillPosted = 1;
                _emulator.Post(_refill);
            }
        }

        /// <summary>Issues what may go, in order, then submits each frontend's batch. Scheduler only.</summary>
        private void Refill()
        {
            _refillPosted = 0;
            if (_refilling || _finished) return;
            _refilling = true;
            try
            {
                long now = Stopwatch.GetTimestamp();
                while (!_noMore)
                {
                    if (!_hasPending)
                    {
                        if (_ct.IsCancellationRequested) { Stop(new OperationCanceledException(_ct)); break; }
                        try
                        {
                            if (!_requests.MoveNext()) { _noMore = true; break; }
                            _pending = _requests.Current;
                        }
                        catch (Exception ex) { Stop(ex); break; }
                        if ((uint)_pending.Frontend >= (uint)_fronts.Count)
                        {
                            Stop(new ArgumentOutOfRangeException("requests", _pending.Frontend, $"request {_index} names frontend {_pending.Frontend}; the rig has {_fronts.Count}"));
                            break;
                        }
                        _hasPending = true;
                    }
                    ulong end = _pending.Sector + Math.Max(1UL, _pending.SectorCount);
                    if (_driver._perFrontend[_pending.Frontend] >= _queueDepth || Conflicts(_pending, end)) break;
                    _hasPending = false;
                    Issue(_pending, _index++, end, now);
                }
                for (int f = 0; f < _stagedCount.Length; f++)
                {
                    int n = _stagedCount[f];
                    if (n == 0) continue;
                    _stagedCount[f] = 0;
                    _fronts[f].SubmitBatch(_staged[f].AsSpan(0, n), this);
                }
            }
            finally { _refilling = false; }
            CheckDone();
        }

        /// <summary>What the admission test needs of a request in flight, kept beside <see cref="_active"/> (same positions).</summary>
        private struct ActiveSpan
        {
            public ulong Start, End;
            public int Frontend;
            public bool Modifies;
        }

        // The task path's admission test (ReplayDriver.Conflicts), over the spans of the slots in flight.
        private bool Conflicts(in ReplayRequest request, ulong end)
        {
            if (request.Operation == BlkifOperation.FlushDiskCache && request.Length == 0) return false;
            ulong start = request.Sector;
            if (!_inFlight.MayOverlap(start, end)) return false;
            bool modifies = request.Modifies;
            int frontend = request.Frontend;
            var spans = _activeSpans.AsSpan(0, _activeCount);
            for (int i = 0; i < spans.Length; i++)
            {
                ref readonly var f = ref spans[i];
                if (f.Start < end && start < f.End && (modifies || f.Modifies) && (_sharedDisk || f.Frontend == frontend)) return true;
            }
            return false;
        }

        private void Issue(in ReplayRequest request, long index, ulong end, long now)
        {
            var front = _fronts[request.Frontend];
            int length = checked((int)request.SectorCount * 512);
            Interlocked.Increment(ref _driver._issued);
            // Requests the task path answers without a ring request (ReplayDriver.IssueAsync) complete here.
            BlkFrontBatchOperation op;
            bool flushAfter = false;
            switch (request.Operation)
            {
                case BlkifOperation.Read when length > 0:
                    op = BlkFrontBatchOperation.Read;
                    break;
                case BlkifOperation.Write when length > 0:
                    op = BlkFrontBatchOperation.Write;
                    break;
                case BlkifOperation.WriteBarrier or BlkifOperation.FlushDiskCache when length > 0:
                    op = BlkFrontBatchOperation.Write;
                    flushAfter = front.SupportsFlush;
                    break;
                case BlkifOperation.WriteBarrier or BlkifOperation.FlushDiskCache when front.SupportsFlush:
                    op = BlkFrontBatchOperation.Flush;
                    break;
                case BlkifOperation.Discard when front.SupportsDiscard && request.SectorCount > 0:
                    op = BlkFrontBatchOperation.Discard;
                    break;
                case BlkifOperation.Read or BlkifOperation.Write or BlkifOperation.WriteBarrier or BlkifOperation.FlushDiskCache or BlkifOperation.Discard:
                    Report(new ReplayCompletion(index, request, BlkifStatus.Okay, true, 0, 0), ReadOnlySpan<byte>.Empty);
                    return;
                default:
                    Report(new ReplayCompletion(index, request, BlkifStatus.NotSupported, true, 0, 0), ReadOnlySpan<byte>.Empty);
                    return;
            }
            int slot = _freeSlots[--_freeCount];
            ref var s = ref _slots[slot];
            s.Request = request;
            s.Index = index;
            s.Started = now;
            s.Length = length;
            s.FlushAfterWrite = flushAfter;
            s.Sequence = 0;
            s.Buffer = null;
            s.ActivePosition = _activeCount;
            _activeSpans[_activeCount] = new ActiveSpan { Start = request.Sector, End = end, Frontend = request.Frontend, Modifies = request.Modifies };
            _inFlight.Add(request.Sector, end);
            _active[_activeCount++] = slot;
            _driver._perFrontend[request.Frontend]++;
            Memory<byte> buffer = default;
            ulong sectors = op == BlkFrontBatchOperation.Discard ? request.SectorCount : 0;
            if (op == BlkFrontBatchOperation.Read && !_wantsReadData)
            {
                op = BlkFrontBatchOperation.ReadUncopied;
                sectors = (ulong)length / BlkifConstants.SectorSize;
            }
            else if (op is BlkFrontBatchOperation.Read or BlkFrontBatchOperation.Write)
            {
                s.Buffer = RentBuffer(slot, length);
                buffer = s.Buffer.AsMemory(0, length);
                if (request.WritesData)
                {
                    s.Sequence = ++_driver._writeSequence;
                    _driver._observer.FillWrite(request, s.Sequence, buffer.Span);
                }
            }
            _staged[request.Frontend][_stagedCount[request.Frontend]++] = new BlkFrontBatchRequest(op, request.Sector, buffer, sectors, slot);
        }

        /// <summary>
        /// The slot's own buffer, grown to the largest request it carried up to <see cref="MaxSlotBuffer"/> (ArrayPool's
        /// shared pool keeps only a few arrays of a size per core, fewer than a deep queue has in flight); a larger request
        /// rents from the pool.
        /// </summary>
        private byte[] RentBuffer(int slot, int length)
        {
            if (length > MaxSlotBuffer) return ArrayPool<byte>.Shared.Rent(length);
            var buffer = _slotBuffers[slot];
            if (buffer == null || buffer.Length < length) _slotBuffers[slot] = buffer = new byte[Math.Max(4096, (int)BitOperations.RoundUpToPowerOf2((uint)length))];
            return buffer;
        }

        /// <summary>Requests up to this long use their slot's own buffer.</summary>
        private const int MaxSlotBuffer = 1 << 20;

        /// <inheritdoc/>
        public void OnCompleted(BlkFront front, long token, BlkifStatus status, bool frontendFailed)
        {
            int slot = (int)token;
            ref var s = ref _slots[slot];
            if (s.FlushAfterWrite && status == BlkifStatus.Okay)
            {
                // A barrier or a flush with data: the write is done, now the flush (the task path's order).
                s.FlushAfterWrite = false;
                var flush = new BlkFrontBatchRequest(BlkFrontBatchOperation.Flush, 0, default, 0, token);
                front.SubmitBatch(new ReadOnlySpan<BlkFrontBatchRequest>(in flush), this);
                return;
            }
            long latency = Stopwatch.GetTimestamp() - s.Started;
            var request = s.Request;
            ref readonly var span = ref _activeSpans[s.ActivePosition];
            _inFlight.Remove(span.Start, span.End);
            int last = _active[--_activeCount];
            _active[s.ActivePosition] = last;
            _activeSpans[s.ActivePosition] = _activeSpans[_activeCount];
            _slots[last].ActivePosition = s.ActivePosition;
            _driver._perFrontend[request.Frontend]--;
            var buffer = s.Buffer;
            s.Buffer = null;
            var read = request.Operation == BlkifOperation.Read && status == BlkifStatus.Okay && buffer != null
                ? buffer.AsSpan(0, s.Length) : ReadOnlySpan<byte>.Empty;
            Report(new ReplayCompletion(s.Index, request, status, false, s.Sequence, latency), read);
            if (buffer != null && buffer != _slotBuffers[slot]) ArrayPool<byte>.Shared.Return(buffer);
            _freeSlots[_freeCount++] = slot;
            ScheduleRefill();
        }

        private void Report(in ReplayCompletion completion, ReadOnlySpan<byte> read)
        {
            try { _driver._observer.OnCompleted(completion, read); }
            catch (Exception ex) { Stop(ex); }
            finally { Interlocked.Increment(ref _driver._completed); }
        }

        /// <summary>Stops issuing (the first failure is rethrown once what is in flight has completed).</summary>
        private void Stop(Exception ex)
        {
            _failure ??= ExceptionDispatchInfo.Capture(ex);
            _noMore = true;
            _hasPending = false;
        }

        private void CheckDone()
        {
            if (_finished || !_noMore || _activeCount > 0) return;
            _finished = true;
            var elapsed = Stopwatch.GetElapsedTime(_start);
            if (_failure != null) _done.TrySetException(_failure.SourceException);
            else _done.TrySetResult(elapsed);
        }
    }
}
