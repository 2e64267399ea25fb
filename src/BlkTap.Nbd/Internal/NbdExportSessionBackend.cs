using System.Runtime.InteropServices;

namespace BlkTap.Nbd.Internal;

/// <summary>
/// One NBD connection's view of the chain: NBD commands in, <see cref="BufferRequest"/>s on the connection's
/// <see cref="BufferSession"/> out. Thread-safe (the server calls it concurrently).
/// Buffers handed to the loop are pinned for the whole request: the caller's <see cref="Memory{T}"/> through
/// <see cref="Memory{T}.Pin"/>, bounce buffers allocated on the pinned object heap.
/// </summary>
internal sealed class NbdExportSessionBackend : INbdExportBackend
{
    private const int Sector = BlkifConstants.SectorSize;
    private const int ZeroChunk = 1 << 20;
    private static readonly byte[] Zeroes = GC.AllocateArray<byte>(ZeroChunk, pinned: true);

    // Unaligned writes are read-modify-write of whole sectors; serialise them so two of them sharing a sector do
    // not undo each other. (An aligned write racing an unaligned one on the same sector is the client's ordering
    // problem: proto.md leaves overlapping in-flight requests unordered.)
    private readonly SemaphoreSlim _rmw = new(1, 1);

    public NbdExportSessionBackend(BufferSession session, NbdExportGeometry geometry)
    {
        Session = session;
        Geometry = geometry;
    }

    public BufferSession Session { get; }

    public NbdExportGeometry Geometry { get; }

    public ulong Size => Geometry.Size;

    public bool ReadOnly => Geometry.ReadOnly;

    // Each connection is its own session of one shared chain, but a chain may give sessions different disks
    // (mem:shared=false), so a FLUSH on one connection is not promised to cover the others.
    public bool CanMultiConn => false;

    private static unsafe nint AddressOf(System.Buffers.MemoryHandle pin) => (nint)pin.Pointer;

    private static int ToNbd(BlkifStatus s) => s switch
    {
        BlkifStatus.Okay => NbdError.None,
        BlkifStatus.NotSupported => NbdError.ENOTSUP,
        _ => NbdError.EIO,
    };

    private static bool Aligned(ulong offset, int length) => offset % Sector == 0 && length % Sector == 0;

    public async ValueTask<int> ReadAsync(ulong offset, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        if (buffer.Length == 0) return NbdError.None;
        if (Aligned(offset, buffer.Length))
        {
            using var pin = buffer.Pin();
            return ToNbd(await BufferOp.Run(Session, BlkifOperation.Read, offset / Sector, AddressOf(pin), buffer.Length).ConfigureAwait(false));
        }
        ulong start = offset / Sector * Sector;
        int length = (int)(RoundUp(offset + (ulong)buffer.Length) - start);
        var bounce = GC.AllocateUninitializedArray<byte>(length, pinned: true);
        var status = await ReadPinned(start, bounce).ConfigureAwait(false);
        if (status == BlkifStatus.Okay) bounce.AsSpan((int)(offset - start), buffer.Length).CopyTo(buffer.Span);
        return ToNbd(status);
    }

    private ValueTask<BlkifStatus> ReadPinned(ulong start, byte[] pinned) =>
        BufferOp.Run(Session, BlkifOperation.Read, start / Sector, Marshal.UnsafeAddrOfPinnedArrayElement(pinned, 0), pinned.Length);

    private static ulong RoundUp(ulong v) => (v + Sector - 1) / Sector * Sector;

    public async ValueTask<int> WriteAsync(ulong offset, ReadOnlyMemory<byte> data, bool fua, CancellationToken cancellationToken)
    {
        if (data.Length == 0) return fua ? await FlushAsync(cancellationToken).ConfigureAwait(false) : NbdError.None;
        if (Aligned(offset, data.Length))
        {
            using var pin = MemoryMarshal.AsMemory(data).Pin();
            return ToNbd(await BufferOp.Run(Session, BlkifOperation.Write, offset / Sector, AddressOf(pin), data.Length, fua).ConfigureAwait(false));
        }
        return await ReadModifyWrite(offset, data, fua).ConfigureAwait(false);
    }

    private async ValueTask<int> ReadModifyWrite(ulong offset, ReadOnlyMemory<byte> data, bool fua)
    {
        ulong start = offset / Sector * Sector;
        int length = (int)(RoundUp(offset + (ulong)data.Length) - start);
        var bounce = GC.AllocateUninitializedArray<byte>(length, pinned: true);
        await _rmw.WaitAsync().ConfigureAwait(false);
        try
        {
            // Only the first and last sectors are partial; read them (reading the whole range is simpler and as fast).
            var status = await ReadPinned(start, bounce).ConfigureAwait(false);
            if (status != BlkifStatus.Okay) return ToNbd(status);
            data.Span.CopyTo(bounce.AsSpan((int)(offset - start)));
            return ToNbd(await BufferOp.Run(Session, BlkifOperation.Write, start / Sector, Marshal.UnsafeAddrOfPinnedArrayElement(bounce, 0), length, fua).ConfigureAwait(false));
        }
        finally { _rmw.Release(); }
    }

    public async ValueTask<int> FlushAsync(CancellationToken cancellationToken)
    {
        // No flush offered: the chain keeps no volatile cache it could flush.
        if (!Geometry.SupportsFlush) return NbdError.None;
        return ToNbd(await BufferOp.Run(Session, BlkifOperation.FlushDiskCache, 0, 0, 0).ConfigureAwait(false));
    }

    public async ValueTask<int> TrimAsync(ulong offset, uint length, bool fua, CancellationToken cancellationToken)
    {
        // NOTE: proto.md NBD_CMD_TRIM is a hint: a server may ignore it, and only whole sectors can be discarded.
        if (!Geometry.SupportsDiscard) return NbdError.None;
        ulong first = RoundUp(offset), end = (offset + length) / Sector * Sector;
        if (end <= first) return NbdError.None;
        var status = await BufferOp.Run(Session, BlkifOperation.Discard, first / Sector, 0, 0, false, (end - first) / Sector).ConfigureAwait(false);
        if (status == BlkifStatus.NotSupported) return NbdError.None;
        if (status == BlkifStatus.Okay && fua) return await FlushAsync(cancellationToken).ConfigureAwait(false);
        return ToNbd(status);
    }

    public async ValueTask<int> WriteZeroesAsync(ulong offset, uint length, bool fua, bool mayTrim, CancellationToken cancellationToken)
    {
        // blkif DISCARD does not promise zeroes, so zeroes are written, never trimmed.
        ulong end = offset + length;
        ulong head = Math.Min(RoundUp(offset), end);
        if (head > offset)
        {
            int e = await ReadModifyWrite(offset, new byte[head - offset], false).ConfigureAwait(false);
            if (e != NbdError.None) return e;
        }
        ulong tailStart = Math.Max(end / Sector * Sector, head);
        for (ulong at = head; at < tailStart; at += ZeroChunk)
        {
            int n = (int)Math.Min(ZeroChunk, tailStart - at);
            var s = await BufferOp.Run(Session, BlkifOperation.Write, at / Sector, Marshal.UnsafeAddrOfPinnedArrayElement(Zeroes, 0), n).ConfigureAwait(false);
            if (s != BlkifStatus.Okay) return ToNbd(s);
        }
        if (end > tailStart)
        {
            int e = await ReadModifyWrite(tailStart, new byte[end - tailStart], false).ConfigureAwait(false);
            if (e != NbdError.None) return e;
        }
        return fua ? await FlushAsync(cancellationToken).ConfigureAwait(false) : NbdError.None;
    }
}
