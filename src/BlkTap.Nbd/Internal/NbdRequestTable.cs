using System.Diagnostics;

namespace BlkTap.Nbd.Internal;

/// <summary>
/// The client's in-flight requests, indexed by slot. A cookie is a <see cref="GenerationalHandle"/> (the slot and the
/// generation it was taken with), so a reply
/// carrying the cookie of a finished (or never used) slot is recognised as garbage. Grows by doubling;
/// freed slots are reused LIFO. Not thread-safe: owned by the client's event-loop thread.
/// </summary>
internal sealed class NbdRequestTable
{
    internal struct Slot
    {
        public ulong UserToken;
        public Memory<byte> Buffer;
        public NbdCommand Command;
        public NbdCommandFlags Flags;
        public ulong Offset;
        public uint Length;
        public uint Generation;
        public bool InUse;
        /// <summary>True once the request (header and payload) has been handed to the send path.</summary>
        public bool Sent;
    }

    private Slot[] _slots;
    private int[] _free;
    private int _freeCount;

    public NbdRequestTable(int initialCapacity = 64)
    {
        _slots = new Slot[initialCapacity];
        _free = new int[initialCapacity];
        for (int i = 0; i < initialCapacity; i++) _free[i] = initialCapacity - 1 - i;
        _freeCount = initialCapacity;
    }

    /// <summary>Requests in flight.</summary>
    public int Count { get; private set; }

    public int Capacity => _slots.Length;

    public ref Slot this[int index] => ref _slots[index];

    /// <summary>Takes a free slot (growing the table if needed) and returns its index.</summary>
    public int Allocate()
    {
        if (_freeCount == 0) Grow();
        int index = _free[--_freeCount];
        ref Slot s = ref _slots[index];
        Debug.Assert(!s.InUse, "free list held a slot in use");
        s.InUse = true;
        s.Sent = false;
        s.Generation++;
        Count++;
        return index;
    }

    public static ulong CookieOf(int index, uint generation) => GenerationalHandle.Make(generation, index);

    /// <summary>Finds the in-use slot a cookie names, or -1.</summary>
    public int Lookup(ulong cookie)
    {
        int index = GenerationalHandle.SlotOf(cookie);
        if ((uint)index >= (uint)_slots.Length) return -1;
        ref Slot s = ref _slots[index];
        return s.InUse && s.Generation == GenerationalHandle.GenerationOf(cookie) ? index : -1;
    }

    /// <summary>Releases a slot; the caller must have read what it needs from it.</summary>
    public void Release(int index)
    {
        ref Slot s = ref _slots[index];
        Debug.Assert(s.InUse, "released a free slot");
        s.InUse = false;
        s.Buffer = default; // do not keep the caller's memory alive
        _free[_freeCount++] = index;
        Count--;
    }

    private void Grow()
    {
        int old = _slots.Length;
        Array.Resize(ref _slots, old * 2);
        Array.Resize(ref _free, old * 2);
        for (int i = old * 2 - 1; i >= old; i--) _free[_freeCount++] = i;
    }
}
