namespace BlkTap;

/// <summary>
/// Byte offsets and sizes of the blkif structures for one ABI. Public so tests can compare every
/// value with Xen's C headers.
/// </summary>
/// <remarks>
/// NOTE: x86_64 values are the natural C layout of xen/include/public/io/blkif.h on x86_64. x86_32
/// values are the same structs compiled for i386, where uint64_t is 4-byte aligned inside structs:
/// id moves from 8 to 4, the request shrinks to 108 bytes and the response to 12. The indirect form on
/// i386 carries an explicit u64 pad so it is 64 bytes on both ABIs.
/// </remarks>
public sealed record BlkifLayout(
    BlkifProtocol Protocol,
    int RequestSize,
    int RequestId,
    int RequestSector,
    int RequestSegments,
    int DiscardNrSectors,
    int DiscardSize,
    int IndirectNrSegments,
    int IndirectId,
    int IndirectSector,
    int IndirectHandle,
    int IndirectGrefs,
    int IndirectSize,
    int ResponseSize,
    int ResponseId,
    int ResponseOperation,
    int ResponseStatus)
{
    /// <summary>Offsets shared by every form: operation @0, nr_segments/flag/indirect_op @1, handle @2.</summary>
    public const int Operation = 0, NrSegments = 1, Handle = 2;

    /// <summary>The x86_64-abi layout.</summary>
    public static readonly BlkifLayout X86_64 = new(BlkifProtocol.X86_64,
        RequestSize: 112, RequestId: 8, RequestSector: 16, RequestSegments: 24,
        DiscardNrSectors: 24, DiscardSize: 32,
        IndirectNrSegments: 2, IndirectId: 8, IndirectSector: 16, IndirectHandle: 24, IndirectGrefs: 28, IndirectSize: 64,
        ResponseSize: 16, ResponseId: 0, ResponseOperation: 8, ResponseStatus: 10);

    /// <summary>The x86_32-abi layout.</summary>
    public static readonly BlkifLayout X86_32 = new(BlkifProtocol.X86_32,
        RequestSize: 108, RequestId: 4, RequestSector: 12, RequestSegments: 20,
        DiscardNrSectors: 20, DiscardSize: 28,
        IndirectNrSegments: 2, IndirectId: 4, IndirectSector: 12, IndirectHandle: 20, IndirectGrefs: 24, IndirectSize: 64,
        ResponseSize: 12, ResponseId: 0, ResponseOperation: 8, ResponseStatus: 10);

    /// <summary>The layout for <paramref name="protocol"/>.</summary>
    public static BlkifLayout For(BlkifProtocol protocol) => protocol == BlkifProtocol.X86_32 ? X86_32 : X86_64;

    /// <summary>
    /// Size of one ring entry: the union of request forms and the response
    /// (<c>union blkif_sring_entry</c>), i.e. the largest of them.
    /// </summary>
    public int RingEntrySize => Math.Max(Math.Max(RequestSize, IndirectSize), Math.Max(DiscardSize, ResponseSize));
}
