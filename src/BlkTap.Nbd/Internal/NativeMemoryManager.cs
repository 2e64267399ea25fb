using System.Buffers;

namespace BlkTap.Nbd.Internal;

/// <summary>
/// A reusable <see cref="Memory{T}"/> over native memory (a request's mapped segment), so the NBD client can
/// receive into and send from granted pages without a copy and without an allocation per request.
/// Loop thread only: <see cref="Reset"/> it only when no one holds the previous <see cref="Memory{T}"/> (the
/// NBD client stops touching a buffer once it has reported the request's completion).
/// </summary>
internal sealed unsafe class NativeMemoryManager : MemoryManager<byte>
{
    private nint _address;
    private int _length;

    /// <summary>Points the manager at <paramref name="length"/> bytes at <paramref name="address"/>.</summary>
    public Memory<byte> Reset(nint address, int length)
    {
        _address = address;
        _length = length;
        return Memory;
    }

    public override Span<byte> GetSpan() => new((void*)_address, _length);

    // The memory is native (never moved by the GC): pinning is a no-op.
    public override MemoryHandle Pin(int elementIndex = 0) => new((byte*)_address + elementIndex);

    public override void Unpin() { }

    protected override void Dispose(bool disposing) { _address = 0; _length = 0; }
}
