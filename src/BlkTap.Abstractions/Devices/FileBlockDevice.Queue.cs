using BlkTap.Storage;

namespace BlkTap;

public sealed partial class FileBlockDevice
{
    // The batched path: reads and writes taken during a loop pass are gathered, one operation per contiguous run, and
    // run together at the end of the pass, before its responses are published (or sooner, when the batch is full, a run
    // overlaps a queued write on a queue that runs in any order, or the lane takes a request); the requests are answered
    // at that end of the pass, so they leave in the pass that took them. Two ways to run a batch:
    // - through the file's submission queue (IQueuedStorageFile, io_uring on Linux; asked for with `queued`): started
    //   with one system call, its operations run in any order;
    // - in order, one positional call each (a file that never waits, INoWaitStorageFile.NeverWaits: tmpfs, ramfs;
    //   `batched`): the same system calls as serving each request at once, but back to back, so the loop's own code
    //   and data stay in the caches between them (on this VM 4 KiB random reads went from 0.86 to 0.92 of a bare
    //   pread loop).

    /// <summary>How many operations one batch holds (the ring's submission entries, or the in-order batch).</summary>
    private const int QueueEntries = 64;

    private readonly bool _useQueue;
    private readonly bool _useBatch;
    private IStorageQueue? _queue;
    private BatchHelpers? _helpers; // the in-order batch's helper threads (threads > 1), from its first batch
    private Exception? _helperError; // the first unexpected exception of a batch's operation, reported after it
    private bool _batching; // the arrays below are set up: through _queue, or in order when it is null
    private bool _batchRefused;
    private bool _passEndScheduled;
    private TapRuntime? _runtime;
    private PassEnd? _passEnd;
    // Per queued request of the batch.
    private TapRequest?[] _batchRequests = [];
    private BlkifStatus[] _batchStatus = [];
    private int _batchCount;
    // Per queued operation (its tag is the index).
    private int[] _opRequest = [];
    private nint[] _opAddress = [];
    private int[] _opLength = [];
    private long[] _opOffset = [];
    private bool[] _opWrite = [];
    private bool[] _opDone = [];
    private int _opCount;
    // Requests whose batch has completed, to be answered at the end of the pass.
    private readonly List<TapRequest> _doneRequests = new(QueueEntries);
    private readonly List<BlkifStatus> _doneStatus = new(QueueEntries);

    /// <summary>Loop thread: true once reads and writes go through the file's submission queue (io_uring).</summary>
    public bool Queued => _queue != null;

    /// <summary>
    /// Loop thread: true once reads and writes are gathered per loop pass and run at its end, through the submission
    /// queue (<see cref="Queued"/>) or in order with one positional call each (a file that never waits).
    /// </summary>
    public bool Batched => _batching;

    /// <summary>
    /// Any thread: how many reads and writes of in-order batches the helper threads have run (0 without helpers:
    /// <c>threads</c> 1, or no batch yet).
    /// </summary>
    public long HelperOperations => _helpers?.HelperOperations ?? 0;

    /// <summary>
    /// Loop thread: whether this pass's reads and writes can be gathered; decided at the first request (a refused
    /// submission queue is not asked again).
    /// </summary>
    private bool BatchReady(TapRequest request)
    {
        if (_batching) return true;
        if (_batchRefused) return false;
        _batchRefused = true;
        var queue = _useQueue ? OpenQueue(request) : null;
        if (queue == null) MapFile(request);
        bool inOrder = queue == null && _useBatch && _nowait is { NeverWaits: true };
        if (queue == null && !inOrder) return false;
        int n = queue?.Capacity ?? QueueEntries;
        _batchRequests = new TapRequest?[n];
        _batchStatus = new BlkifStatus[n];
        _opRequest = new int[n];
        _opAddress = new nint[n];
        _opLength = new int[n];
        _opOffset = new long[n];
        _opWrite = new bool[n];
        _opDone = new bool[n];
        _runtime = request.Runtime;
        _passEnd = new PassEnd(this);
        if (queue == null && _threads > 1) _helpers = new BatchHelpers(new BatchOperations(this), _threads - 1, System.IO.Path.GetFileName(Path));
        _queue = queue;
        _batching = true;
        return true;
    }

    /// <summary>Loop thread: the file's submission queue, or null (refused: said once; not offered: silently).</summary>
    private IStorageQueue? OpenQueue(TapRequest request)
    {
        if (_file is not IQueuedStorageFile queued) return null; // the power-cut simulation, a test's file: silently
        IStorageQueue? queue;
        string? why;
        try { queue = queued.OpenQueue(QueueEntries, out why); }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { queue = null; why = ex.Message; }
        if (queue == null && why != null) // null reason: the file offers none (not in memory), nothing to say
            request.Runtime.Report(TapDiagnosticLevel.Information, request.Session, $"{Path}: no submission queue ({why}); reads and writes one system call each");
        return queue;
    }

    /// <summary>
    /// Loop thread: queues <paramref name="request"/>'s runs. False when the queue is unavailable or the request needs
    /// more operations than a batch holds (the caller serves it as before); true with the result otherwise (Stolen, or
    /// Respond with Error for a range error).
    /// </summary>
    private bool TryQueue(TapRequest request, bool write, out HookResult result)
    {
        result = HookResult.Respond;
        if (!BatchReady(request)) return false;
        var segments = request.Segments;
        int runs = 0;
        bool conflict = false;
        for (int i = 0; i < segments.Length;)
        {
            var run = BlockDeviceHook.NextRun(segments, ref i);
            if (!InRange(run.Sector, run.Length)) { request.Status = BlkifStatus.Error; return true; }
            runs++;
            // An in-order batch runs a write and a later read of the same bytes in that order; a queue may not.
            conflict = conflict || (_queue != null && Conflicts((long)run.Sector * BlkifConstants.SectorSize, run.Length, write));
        }
        if (runs == 0) return false;
        int capacity = _opRequest.Length;
        if (runs > capacity)
        {
            // Served at once by the caller: what is gathered runs first, so the request still sees every write before it.
            SubmitQueued();
            return false;
        }
        if (conflict || _opCount + runs > capacity) SubmitQueued();
        if (!_batching) return false; // the submit failed and closed the queue, and the file offers no in-order batch
        int slot = _batchCount++;
        _batchRequests[slot] = request;
        _batchStatus[slot] = BlkifStatus.Okay;
        for (int i = 0; i < segments.Length;)
        {
            var run = BlockDeviceHook.NextRun(segments, ref i);
            int op = _opCount++;
            long offset = (long)run.Sector * BlkifConstants.SectorSize;
            _opRequest[op] = slot;
            _opAddress[op] = run.Address;
            _opLength[op] = run.Length;
            _opOffset[op] = offset;
            _opWrite[op] = write;
            _opDone[op] = false;
        }
        if (!_passEndScheduled)
        {
            _passEndScheduled = true;
            _runtime!.RunBeforePublish(_passEnd!);
        }
        result = HookResult.Stolen;
        return true;
    }

    /// <summary>True when a run overlaps a queued operation and one of the two writes (the batch runs in any order).</summary>
    private bool Conflicts(long offset, int length, bool write)
    {
        long end = offset + length;
        for (int op = 0; op < _opCount; op++)
        {
            if (!write && !_opWrite[op]) continue;
            if (offset < _opOffset[op] + _opLength[op] && _opOffset[op] < end) return true;
        }
        return false;
    }

    /// <summary>
    /// Loop thread: runs what is gathered (in order, or started on the queue and waited for: either exists only where
    /// nothing waits for a device) and sets its requests aside for <see cref="AnswerDone"/>; a write is answered only
    /// after its result. Never throws: a failing queue fails what it held with Error and is closed (the file then goes
    /// on with in-order batches where it never waits, else with one call per request).
    /// </summary>
    private void SubmitQueued()
    {
        if (_opCount == 0) return;
        var queue = _queue;
        if (queue == null || _opCount < queue.MinimumBatch) RunSmallBatch();
        else try
        {
            for (int op = 0; op < _opCount; op++)
            {
                if (_opWrite[op]) queue.QueueWrite(_opAddress[op], _opLength[op], _opOffset[op], op);
                else queue.QueueRead(_opAddress[op], _opLength[op], _opOffset[op], op);
            }
            queue.SubmitAndWait();
            while (queue.TryReap(out int tag, out int res))
            {
                if ((uint)tag < (uint)_opCount) Finish(tag, res);
            }
        }
        catch (Exception ex) when (ex is IOException or InvalidOperationException or ObjectDisposedException)
        {
            for (int op = 0; op < _opCount; op++)
                if (!_opDone[op]) _batchStatus[_opRequest[op]] = BlkifStatus.Error;
            _queue = null;
            _batching = _useBatch && _nowait is { NeverWaits: true };
            _runtime?.Report(TapDiagnosticLevel.Error, null, $"{Path}: the submission queue failed, going on without it: {ex.Message}");
            try { queue.Dispose(); } catch (IOException) { }
        }
        for (int op = 0; op < _opCount; op++)
            if (!_opDone[op]) _batchStatus[_opRequest[op]] = BlkifStatus.Error;
        int count = _batchCount;
        _opCount = 0;
        _batchCount = 0;
        for (int i = 0; i < count; i++)
        {
            _doneRequests.Add(_batchRequests[i]!);
            _doneStatus.Add(_batchStatus[i]);
            _batchRequests[i] = null;
        }
    }

    /// <summary>
    /// Loop thread: answers the requests of completed batches: at once within the pass (<paramref name="inPass"/>, from
    /// the before-publish handler), or posted to the loop's next pass (at close, outside a pass).
    /// </summary>
    private void AnswerDone(bool inPass)
    {
        for (int i = 0; i < _doneRequests.Count; i++)
        {
            var r = _doneRequests[i];
            if (inPass) r.Runtime.CompleteStolen(r, _doneStatus[i]);
            else r.Runtime.InjectResponse(r, _doneStatus[i]);
        }
        _doneRequests.Clear();
        _doneStatus.Clear();
    }

    /// <summary>Loop thread, or any once the loop has stopped: completes the batch and answers everything (posted).</summary>
    private void CompleteQueued()
    {
        SubmitQueued();
        AnswerDone(inPass: false);
    }

    /// <summary>
    /// An in-order batch, or one smaller than <see cref="IStorageQueue.MinimumBatch"/>: each operation in turn with one
    /// pread or pwrite (what <see cref="Finish"/> does for the rest of a short transfer).
    /// </summary>
    private void RunSmallBatch()
    {
        var helpers = _helpers;
        if (helpers == null)
        {
            for (int op = 0; op < _opCount; op++) Finish(op, 0);
            return;
        }
        // With helper threads: the batch in stretches of operations none of which overlaps a write of the same stretch,
        // each run by the loop and its helpers in any order; one stretch ends before the next starts, so a read still
        // sees every write queued before it, and two writes of the same bytes land in ring order.
        int start = 0;
        for (int op = 1; op < _opCount; op++)
        {
            if (!OverlapsEarlier(start, op)) continue;
            helpers.Run(start, op);
            start = op;
        }
        helpers.Run(start, _opCount);
        if (Interlocked.Exchange(ref _helperError, null) is { } error)
            _runtime?.Report(TapDiagnosticLevel.Error, null, $"{Path}: a read or write failed unexpectedly", error);
    }

    /// <summary>True when operation <paramref name="op"/> overlaps one of operations <paramref name="start"/>..op-1 and one of the two writes.</summary>
    private bool OverlapsEarlier(int start, int op)
    {
        long offset = _opOffset[op], end = offset + _opLength[op];
        bool write = _opWrite[op];
        for (int i = start; i < op; i++)
        {
            if (!write && !_opWrite[i]) continue;
            if (offset < _opOffset[i] + _opLength[i] && _opOffset[i] < end) return true;
        }
        return false;
    }

    /// <summary>The in-order batch's operations as the helper threads see them.</summary>
    private sealed class BatchOperations(FileBlockDevice device) : IBatchOperations
    {
        public void Run(int op) => device.Finish(op, 0);

        public void Fail(int op, Exception error)
        {
            device._opDone[op] = true;
            device._batchStatus[device._opRequest[op]] = BlkifStatus.Error;
            Interlocked.CompareExchange(ref device._helperError, error, null); // reported by the loop after the batch
        }
    }

    /// <summary>One operation's result: short transfers are finished with the blocking calls (a read past the end reads as zeroes).</summary>
    private unsafe void Finish(int op, int res)
    {
        _opDone[op] = true;
        int slot = _opRequest[op];
        int length = _opLength[op];
        if (res < 0) { _batchStatus[slot] = BlkifStatus.Error; return; }
        if (res >= length) return;
        try
        {
            if (_opWrite[op]) _file.Write(new ReadOnlySpan<byte>((byte*)_opAddress[op] + res, length - res), _opOffset[op] + res);
            else _file.ReadFully(new Span<byte>((byte*)_opAddress[op] + res, length - res), _opOffset[op] + res);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { _batchStatus[slot] = BlkifStatus.Error; }
    }

    /// <summary>The end of the pass that queued the batch, before its responses are published: submitted and answered then.</summary>
    private sealed class PassEnd(FileBlockDevice device) : IEndOfPassHandler
    {
        public void OnEndOfPass()
        {
            device._passEndScheduled = false;
            device.SubmitQueued();
            device.AnswerDone(inPass: true);
        }
    }
}
