using System.Runtime.InteropServices;

namespace BlkTap.Emulator.PowerCut.Internal;

/// <summary>
/// The seeded requests of one cut (writes, FUA writes, flushes, barriers, discards) through a <see cref="LoopDriver"/>,
/// each recorded in a <see cref="SectorModel"/> as it is issued and as it is answered. Writes to a sector never overlap
/// in flight. Threading: the driver's thread (completions run there).
/// </summary>
internal sealed class PowerCutWorkload
{
    public const int MaxSectors = 16;
    private const int Slots = 8;
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(60);

    private readonly LoopDriver _driver;
    private readonly PowerCutStorage _storage;
    private readonly SectorModel _model;
    private readonly Random _random;
    private readonly ulong _sectors;
    private readonly int _depth;
    private readonly byte[] _buffers;
    private readonly nint _buffersAddress;
    private readonly Stack<int> _freeSlots = new();
    private readonly List<Op> _inFlight = new();
    private readonly List<(ulong Start, ulong Count, long Generation)> _acknowledged = new();

    public PowerCutWorkload(LoopDriver driver, PowerCutStorage storage, SectorModel model, Random random, ulong sectors)
    {
        _driver = driver;
        _storage = storage;
        _model = model;
        _random = random;
        _sectors = sectors;
        _depth = 1 + random.Next(Slots);
        _buffers = GC.AllocateArray<byte>(Slots * MaxSectors * 512, pinned: true);
        _buffersAddress = Marshal.UnsafeAddrOfPinnedArrayElement(_buffers, 0);
        for (int i = _depth - 1; i >= 0; i--) _freeSlots.Push(i);
    }

    public long AcknowledgedWrites { get; private set; }
    public long CompletedFlushes { get; private set; }
    /// <summary>Requests issued before the cut and answered after it.</summary>
    public int AnsweredAfterCut { get; private set; }
    public List<string> Problems { get; } = new();
    public bool Idle => _inFlight.Count == 0;
    /// <summary>The pinned buffers requests point into (kept alive by whoever abandons a hung run).</summary>
    public byte[] Buffers => _buffers;

    private enum Kind : byte { Write, Fua, Barrier, Flush, Discard }

    private sealed class Op
    {
        public Kind Kind;
        public ulong Start, Count;
        public long Generation;
        public int Slot = -1;
        public int Covered; // flush and barrier: acknowledged writes before it was issued
    }

    /// <summary>Issues up to <paramref name="requests"/> requests, stopping at the cut; false if the chain hung.</summary>
    public bool Run(int requests)
    {
        bool discard = _driver.Session.SupportsDiscard;
        for (int i = 0; i < requests && !_storage.IsCut; i++)
        {
            int r = _random.Next(100);
            var kind = r < 58 ? Kind.Write : r < 68 ? Kind.Fua : r < 82 ? Kind.Flush : r < 87 ? Kind.Barrier : discard ? Kind.Discard : Kind.Write;
            if (kind == Kind.Flush)
            {
                Issue(new Op { Kind = kind, Covered = _acknowledged.Count });
            }
            else
            {
                ulong count = (ulong)_random.Next(1, MaxSectors + 1);
                ulong start = (ulong)_random.NextInt64((long)(_sectors - count + 1));
                bool data = kind != Kind.Discard;
                if (!_driver.RunUntil(() => (!data || _freeSlots.Count > 0) && !Overlaps(start, count), Deadline)) return false;
                if (_storage.IsCut) break;
                var op = new Op { Kind = kind, Start = start, Count = count, Covered = _acknowledged.Count };
                op.Generation = _model.NewGeneration(discard: kind == Kind.Discard);
                if (data)
                {
                    op.Slot = _freeSlots.Pop();
                    var span = _buffers.AsSpan(op.Slot * MaxSectors * 512, (int)count * 512);
                    for (ulong s = 0; s < count; s++) SectorStamps.Fill(span.Slice((int)s * 512, 512), op.Generation, start + s);
                }
                _model.Issued(start, count, op.Generation);
                Issue(op);
            }
            // Sometimes let the chain run now, sometimes queue more first (several requests in one pass, or in flight).
            if (_random.Next(3) == 0) _driver.RunPending();
        }
        return true;
    }

    /// <summary>Runs the loop until every request is answered; false at the deadline.</summary>
    public bool Drain() => _driver.RunUntil(() => Idle, Deadline);

    private bool Overlaps(ulong start, ulong count)
    {
        foreach (var o in _inFlight)
            if (o.Count > 0 && start < o.Start + o.Count && o.Start < start + count) return true;
        return false;
    }

    private void Issue(Op op)
    {
        _inFlight.Add(op);
        var b = new BufferRequest
        {
            Operation = op.Kind switch { Kind.Flush => BlkifOperation.FlushDiskCache, Kind.Barrier => BlkifOperation.WriteBarrier, Kind.Discard => BlkifOperation.Discard, _ => BlkifOperation.Write },
            Sector = op.Start,
            ForceUnitAccess = op.Kind == Kind.Fua,
            Completed = b => Answered(op, b.Status),
        };
        if (op.Kind == Kind.Discard) b.DiscardSectors = op.Count;
        else if (op.Slot >= 0)
        {
            b.Data = _buffersAddress + op.Slot * MaxSectors * 512;
            b.Length = (int)op.Count * 512;
        }
        _driver.Session.Submit(b);
    }

    private void Answered(Op op, BlkifStatus status)
    {
        _inFlight.Remove(op);
        if (op.Slot >= 0) _freeSlots.Push(op.Slot);
        bool cut = _storage.IsCut;
        if (cut) AnsweredAfterCut++;
        if (status != BlkifStatus.Okay)
        {
            // After the cut every storage call fails; before it nothing may.
            if (!cut && Problems.Count < 5) Problems.Add($"{op.Kind} {op.Start}+{op.Count} answered {status} before the power cut");
            return;
        }
        switch (op.Kind)
        {
            case Kind.Write:
            case Kind.Discard:
                AcknowledgedWrites++;
                _acknowledged.Add((op.Start, op.Count, op.Generation));
                break;
            case Kind.Fua:
                AcknowledgedWrites++;
                _acknowledged.Add((op.Start, op.Count, op.Generation));
                _model.Durable(op.Start, op.Count, op.Generation);
                break;
            case Kind.Barrier:
            case Kind.Flush:
                // Every write acknowledged before it was issued is durable; a barrier's own data too.
                CompletedFlushes++;
                for (int i = 0; i < op.Covered; i++) _model.Durable(_acknowledged[i].Start, _acknowledged[i].Count, _acknowledged[i].Generation);
                if (op.Kind == Kind.Barrier)
                {
                    AcknowledgedWrites++;
                    _acknowledged.Add((op.Start, op.Count, op.Generation));
                    _model.Durable(op.Start, op.Count, op.Generation);
                }
                break;
        }
    }
}
