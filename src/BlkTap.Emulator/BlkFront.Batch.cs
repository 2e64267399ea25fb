using BlkTap.Emulator.Internal;

namespace BlkTap.Emulator;

public sealed partial class BlkFront
{
    // The batch path (SubmitBatch): requests given as values, carried by pooled operations, placed on the ring by the
    // data path's Pump (one push, one notification for the whole batch), completed through a callback instead of a
    // task. Scheduler only. What it uses of the other files: _phase, _incoming and Pump() (BlkFront.DataPath.cs moves
    // _incoming onto the ring, splits, grants and matches responses exactly as for the task-based calls), and the
    // operation's Complete/Fail, which report to its Sink.

    private readonly Stack<BlkFrontOperation> _batchPool = new();
    private readonly List<(long Token, BlkifStatus Status, bool Failed)> _batchAnswered = new();
    private BatchSink? _batchSink;
    private bool _batchReporting;

    /// <summary>
    /// Submits <paramref name="requests"/> in order and returns at once; each completes through
    /// <paramref name="completion"/> with its <see cref="BlkFrontBatchRequest.Token"/>. The requests go onto the ring as
    /// far as it has room, with one push and at most one notification for the whole batch (the rest follow as
    /// responses free slots, as for <see cref="ReadAsync"/>); each is split, granted and checked exactly as the
    /// task-based calls do. No task and, once the frontend's pool of operations is warm, no allocation per request.
    /// </summary>
    /// <remarks>
    /// <para>Threading: call it on the emulator's scheduler (from <see cref="XenEmulator.Post"/>, a completion, or any
    /// code the emulator runs). Requests answered without asking (an empty read or write, a flush or discard the
    /// backend does not offer: EOPNOTSUPP, a frontend that is not connected: ERROR) complete before this returns,
    /// after the others are on the ring.</para>
    /// </remarks>
    /// <exception cref="InvalidOperationException">Called off the emulator's scheduler.</exception>
    /// <exception cref="ArgumentException">A read or write length is not a multiple of 512.</exception>
    public void SubmitBatch(ReadOnlySpan<BlkFrontBatchRequest> requests, IBlkFrontBatchCompletion completion)
    {
        ArgumentNullException.ThrowIfNull(completion);
        if (!_emulator.IsSchedulerThread) throw new InvalidOperationException("SubmitBatch runs on the emulator's scheduler (post it with XenEmulator.Post)");
        foreach (ref readonly var r in requests)
            if (r.Operation is BlkFrontBatchOperation.Read or BlkFrontBatchOperation.Write) CheckLength(r.Buffer.Length, nameof(requests));
        var sink = _batchSink is { } cached && ReferenceEquals(cached.Completion, completion) ? cached : _batchSink = new BatchSink(this, completion);
        var phase = _phase;
        bool queued = false;
        foreach (ref readonly var r in requests)
        {
            if (phase != Phase.Connected)
            {
                _batchAnswered.Add((r.Token, BlkifStatus.Error, true));
                continue;
            }
            BlkFrontOperationKind kind;
            ulong count;
            switch (r.Operation)
            {
                case BlkFrontBatchOperation.Read:
                case BlkFrontBatchOperation.Write:
                    if (r.Buffer.Length == 0) { _batchAnswered.Add((r.Token, BlkifStatus.Okay, false)); continue; }
                    kind = r.Operation == BlkFrontBatchOperation.Read ? BlkFrontOperationKind.Read : BlkFrontOperationKind.Write;
                    count = (ulong)r.Buffer.Length / BlkifConstants.SectorSize;
                    break;
                case BlkFrontBatchOperation.Flush:
                    if (!SupportsFlush) { _batchAnswered.Add((r.Token, BlkifStatus.NotSupported, false)); continue; }
                    kind = BlkFrontOperationKind.Flush;
                    count = 0;
                    break;
                case BlkFrontBatchOperation.ReadUncopied:
                    if (r.SectorCount == 0) { _batchAnswered.Add((r.Token, BlkifStatus.Okay, false)); continue; }
                    if (!r.Buffer.IsEmpty) throw new ArgumentException("an uncopied read takes no buffer (its length is SectorCount)", nameof(requests));
                    kind = BlkFrontOperationKind.Read;
                    count = r.SectorCount;
                    break;
                case BlkFrontBatchOperation.Discard:
                    if (r.SectorCount == 0) { _batchAnswered.Add((r.Token, BlkifStatus.Okay, false)); continue; }
                    if (!SupportsDiscard) { _batchAnswered.Add((r.Token, BlkifStatus.NotSupported, false)); continue; }
                    kind = BlkFrontOperationKind.Discard;
                    count = r.SectorCount;
                    break;
                default:
                    throw new ArgumentException($"unknown batch operation {r.Operation}", nameof(requests));
            }
            var op = _batchPool.Count > 0 ? _batchPool.Pop() : BlkFrontOperation.ForBatch();
            op.Reuse(sink, kind, r.Sector, count, r.Buffer, r.Token);
            _incoming.Enqueue(op);
            queued = true;
        }
        if (queued) Pump();
        ReportAnswered();
    }

    /// <summary>Hands the requests answered without asking to their completion (not re-entered by a nested call).</summary>
    private void ReportAnswered()
    {
        if (_batchReporting || _batchAnswered.Count == 0) return;
        _batchReporting = true;
        try
        {
            var completion = _batchSink!.Completion;
            for (int i = 0; i < _batchAnswered.Count; i++)
            {
                var (token, status, failed) = _batchAnswered[i];
                completion.OnCompleted(this, token, status, failed);
            }
        }
        finally
        {
            _batchAnswered.Clear();
            _batchReporting = false;
        }
    }

    /// <summary>Turns a finished batch operation into its caller's completion and pools the operation.</summary>
    private sealed class BatchSink(BlkFront front, IBlkFrontBatchCompletion completion) : IBlkFrontOperationSink
    {
        public IBlkFrontBatchCompletion Completion { get; } = completion;

        public void OnFinished(BlkFrontOperation op, BlkifStatus status, bool failed)
        {
            long token = op.Token;
            // A completed operation is named by no shadow and no queue any more (the data path completes it after its
            // last part); a failed one may still be, while the frontend fails the rest: never reuse those.
            if (!failed) front._batchPool.Push(op);
            Completion.OnCompleted(front, token, status, failed);
        }
    }
}
