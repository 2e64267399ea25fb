using System.Diagnostics;

namespace BlkTap.Nbd.Internal;

/// <summary>
/// The nbd tap's requests in flight: one slot per stolen <see cref="TapRequest"/>, which may have become several
/// NBD commands (one per contiguous run of segment memory, or one per TRIM chunk). Each command carries the slot's
/// token; the slot completes when its last command does. Loop thread only. Pooled: no allocation per request
/// once warm.
/// </summary>
internal sealed class NbdTapRequestTable
{
    internal struct Slot
    {
        public TapRequest? Request;
        public int Remaining;        // NBD commands submitted and not yet completed
        public BlkifStatus Status;   // worst outcome so far
        public bool FlushAfter;      // a barrier/FUA write on a server without SEND_FUA: FLUSH once the data is written
        public uint Generation;
        public List<NativeMemoryManager> Buffers;
        public int BuffersUsed;
        public byte[]? Bounce;       // pinned; kept by the slot for reuse when small enough
        public int BounceLength;     // bytes of Bounce this request uses (0: no bounce)
    }

    private const int KeepBounceUpTo = 1 << 20;

    /// <summary>A pinned buffer of at least <paramref name="length"/> bytes for the slot's request.</summary>
    public byte[] Bounce(int index, int length)
    {
        ref var s = ref _slots[index];
        if (s.Bounce == null || s.Bounce.Length < length)
            s.Bounce = GC.AllocateUninitializedArray<byte>(Math.Max(length, 64 * 1024), pinned: true);
        s.BounceLength = length;
        return s.Bounce;
    }

    private Slot[] _slots = new Slot[64];
    private readonly Stack<int> _free = new();
    private int _next;

    public int Count { get; private set; }

    public int Capacity => _next;

    public ref Slot this[int index] => ref _slots[index];

    public int Allocate(TapRequest request)
    {
        int index;
        if (_free.Count > 0) index = _free.Pop();
        else
        {
            if (_next == _slots.Length) Array.Resize(ref _slots, _slots.Length * 2);
            index = _next++;
            _slots[index].Buffers = new List<NativeMemoryManager>(4);
        }
        ref var s = ref _slots[index];
        Debug.Assert(s.Request == null, "a free slot holds no request");
        s.Request = request;
        s.Remaining = 0;
        s.Status = BlkifStatus.Okay;
        s.FlushAfter = false;
        s.BuffersUsed = 0;
        s.Generation++;
        Count++;
        return index;
    }

    /// <summary>A Memory over <paramref name="length"/> bytes at <paramref name="address"/>, owned by the slot until release.</summary>
    public Memory<byte> Buffer(int index, nint address, int length)
    {
        ref var s = ref _slots[index];
        if (s.BuffersUsed == s.Buffers.Count) s.Buffers.Add(new NativeMemoryManager());
        return s.Buffers[s.BuffersUsed++].Reset(address, length);
    }

    /// <summary>The token of slot <paramref name="index"/> taken for the <paramref name="generation"/>th time.</summary>
    public static ulong TokenOf(int index, uint generation) => GenerationalHandle.Make(generation, index);

    /// <summary>The slot a token names, or -1 when it is stale (already released).</summary>
    public int Lookup(ulong token)
    {
        int index = GenerationalHandle.SlotOf(token);
        if ((uint)index >= (uint)_next) return -1;
        ref var s = ref _slots[index];
        return s.Request != null && s.Generation == GenerationalHandle.GenerationOf(token) ? index : -1;
    }

    public TapRequest Release(int index)
    {
        ref var s = ref _slots[index];
        var r = s.Request!;
        s.Request = null;
        s.BuffersUsed = 0;
        s.BounceLength = 0;
        if (s.Bounce is { Length: > KeepBounceUpTo }) s.Bounce = null;
        Count--;
        _free.Push(index);
        return r;
    }
}
