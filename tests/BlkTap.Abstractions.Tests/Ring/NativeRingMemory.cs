using System.Buffers.Binary;
using System.Runtime.InteropServices;

namespace BlkTap.Abstractions.Tests.Ring;

/// <summary>
/// Page-aligned, zeroed native memory standing in for a granted ring (one or more pages), plus
/// direct access to the shared header so tests can play a misbehaving peer. Not thread-safe to
/// dispose while in use.
/// </summary>
internal sealed unsafe class NativeRingMemory : IDisposable
{
    private void* _pointer;

    public NativeRingMemory(int bytes)
    {
        Length = bytes;
        _pointer = NativeMemory.AlignedAlloc((nuint)bytes, BlkifConstants.PageSize);
        new Span<byte>(_pointer, bytes).Clear();
    }

    public int Length { get; }

    public nint Address => (nint)_pointer;

    public Span<byte> Bytes => new(_pointer, Length);

    public uint ReqProd { get => Read(SharedRingLayout.ReqProd); set => Write(SharedRingLayout.ReqProd, value); }
    public uint ReqEvent { get => Read(SharedRingLayout.ReqEvent); set => Write(SharedRingLayout.ReqEvent, value); }
    public uint RspProd { get => Read(SharedRingLayout.RspProd); set => Write(SharedRingLayout.RspProd, value); }
    public uint RspEvent { get => Read(SharedRingLayout.RspEvent); set => Write(SharedRingLayout.RspEvent, value); }

    /// <summary>SHARED_RING_INIT as if every index had started at <paramref name="index"/>: producers at index, events at index + 1.</summary>
    public void InitialiseAt(uint index)
    {
        Bytes[..SharedRingLayout.EntriesOffset].Clear();
        ReqProd = index;
        RspProd = index;
        ReqEvent = unchecked(index + 1);
        RspEvent = unchecked(index + 1);
    }

    public void Dispose()
    {
        if (_pointer == null) return;
        NativeMemory.AlignedFree(_pointer);
        _pointer = null;
    }

    private uint Read(int offset) => BinaryPrimitives.ReadUInt32LittleEndian(Bytes[offset..]);

    private void Write(int offset, uint value) => BinaryPrimitives.WriteUInt32LittleEndian(Bytes[offset..], value);
}
