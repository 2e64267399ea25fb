using System.Buffers.Binary;

namespace BlkTap;

/// <summary>
/// Reads and writes blkif requests and responses in either ABI. Pure functions over spans:
/// thread-safe and allocation-free.
/// </summary>
/// <remarks>
/// NOTE: all fields are little-endian (x86). Decoding copies every field out of <c>source</c> exactly
/// once, so a guest rewriting the ring slot afterwards cannot change what was decoded (the XSA-155
/// double-fetch lesson). Decoding never fails for field values: validation is a separate step
/// (<see cref="BlkifValidation"/>), so garbage gets a response instead of vanishing.
/// </remarks>
public static class BlkifCodec
{
    /// <summary>Decodes a request from a ring slot. <paramref name="source"/> must hold a whole request.</summary>
    public static void DecodeRequest(ReadOnlySpan<byte> source, BlkifLayout layout, out BlkifRequest request)
    {
        if (source.Length < layout.RequestSize)
            throw new ArgumentException($"a {layout.Protocol} request needs {layout.RequestSize} bytes, got {source.Length}", nameof(source));
        request = default;
        var op = (BlkifOperation)source[BlkifLayout.Operation];
        request.Operation = op;
        request.Handle = BinaryPrimitives.ReadUInt16LittleEndian(source[BlkifLayout.Handle..]);
        switch (op)
        {
            case BlkifOperation.Discard:
                request.DiscardFlags = source[BlkifLayout.NrSegments];
                request.Id = BinaryPrimitives.ReadUInt64LittleEndian(source[layout.RequestId..]);
                request.Sector = BinaryPrimitives.ReadUInt64LittleEndian(source[layout.RequestSector..]);
                request.DiscardSectorCount = BinaryPrimitives.ReadUInt64LittleEndian(source[layout.DiscardNrSectors..]);
                break;
            case BlkifOperation.Indirect:
                request.IndirectOperation = (BlkifOperation)source[BlkifLayout.NrSegments];
                request.SegmentCount = BinaryPrimitives.ReadUInt16LittleEndian(source[layout.IndirectNrSegments..]);
                request.Id = BinaryPrimitives.ReadUInt64LittleEndian(source[layout.IndirectId..]);
                request.Sector = BinaryPrimitives.ReadUInt64LittleEndian(source[layout.IndirectSector..]);
                request.Handle = BinaryPrimitives.ReadUInt16LittleEndian(source[layout.IndirectHandle..]);
                for (int i = 0; i < BlkifConstants.MaxIndirectPagesPerRequest; i++)
                    request.IndirectRefs[i] = BinaryPrimitives.ReadUInt32LittleEndian(source[(layout.IndirectGrefs + 4 * i)..]);
                break;
            default:
                int count = source[BlkifLayout.NrSegments];
                request.SegmentCount = count;
                request.Id = BinaryPrimitives.ReadUInt64LittleEndian(source[layout.RequestId..]);
                request.Sector = BinaryPrimitives.ReadUInt64LittleEndian(source[layout.RequestSector..]);
                int n = Math.Min(count, BlkifConstants.MaxSegmentsPerRequest);
                for (int i = 0; i < n; i++)
                    request.Segments[i] = DecodeSegment(source.Slice(layout.RequestSegments + BlkifSegment.Size * i, BlkifSegment.Size));
                break;
        }
    }

    /// <summary>Encodes a request into a ring slot (frontends, tests). Writes <c>layout.RequestSize</c> bytes.</summary>
    public static void EncodeRequest(in BlkifRequest request, BlkifLayout layout, Span<byte> destination)
    {
        if (destination.Length < layout.RequestSize)
            throw new ArgumentException($"a {layout.Protocol} request needs {layout.RequestSize} bytes, got {destination.Length}", nameof(destination));
        // NOTE: blkif.h: nr_segments is a uint8_t in blkif_request, a uint16_t in blkif_request_indirect
        // (discard has none). A count that does not fit is refused, never silently truncated.
        if (request.Operation == BlkifOperation.Indirect)
        {
            if ((uint)request.SegmentCount > ushort.MaxValue)
                throw new ArgumentOutOfRangeException(nameof(request), request.SegmentCount, "an indirect request carries 0..65535 segments (nr_segments is a u16)");
        }
        else if (request.Operation != BlkifOperation.Discard && (uint)request.SegmentCount > byte.MaxValue)
            throw new ArgumentOutOfRangeException(nameof(request), request.SegmentCount, "a segment-form request carries 0..255 segments (nr_segments is a u8)");
        destination[..layout.RequestSize].Clear();
        destination[BlkifLayout.Operation] = (byte)request.Operation;
        BinaryPrimitives.WriteUInt16LittleEndian(destination[BlkifLayout.Handle..], request.Handle);
        switch (request.Operation)
        {
            case BlkifOperation.Discard:
                destination[BlkifLayout.NrSegments] = request.DiscardFlags;
                BinaryPrimitives.WriteUInt64LittleEndian(destination[layout.RequestId..], request.Id);
                BinaryPrimitives.WriteUInt64LittleEndian(destination[layout.RequestSector..], request.Sector);
                BinaryPrimitives.WriteUInt64LittleEndian(destination[layout.DiscardNrSectors..], request.DiscardSectorCount);
                break;
            case BlkifOperation.Indirect:
                destination[BlkifLayout.NrSegments] = (byte)request.IndirectOperation;
                BinaryPrimitives.WriteUInt16LittleEndian(destination[layout.IndirectNrSegments..], (ushort)request.SegmentCount);
                BinaryPrimitives.WriteUInt64LittleEndian(destination[layout.IndirectId..], request.Id);
                BinaryPrimitives.WriteUInt64LittleEndian(destination[layout.IndirectSector..], request.Sector);
                BinaryPrimitives.WriteUInt16LittleEndian(destination[layout.IndirectHandle..], request.Handle);
                for (int i = 0; i < BlkifConstants.MaxIndirectPagesPerRequest; i++)
                    BinaryPrimitives.WriteUInt32LittleEndian(destination[(layout.IndirectGrefs + 4 * i)..], request.IndirectRefs[i]);
                break;
            default:
                destination[BlkifLayout.NrSegments] = (byte)request.SegmentCount;
                BinaryPrimitives.WriteUInt64LittleEndian(destination[layout.RequestId..], request.Id);
                BinaryPrimitives.WriteUInt64LittleEndian(destination[layout.RequestSector..], request.Sector);
                int n = Math.Min(request.SegmentCount, BlkifConstants.MaxSegmentsPerRequest);
                for (int i = 0; i < n; i++)
                    EncodeSegment(request.Segments[i], destination.Slice(layout.RequestSegments + BlkifSegment.Size * i, BlkifSegment.Size));
                break;
        }
    }

    /// <summary>Decodes one 8-byte segment descriptor (inline or from an indirect page).</summary>
    public static BlkifSegment DecodeSegment(ReadOnlySpan<byte> source)
    {
        if (source.Length < BlkifSegment.Size)
            throw new ArgumentException($"a segment descriptor needs {BlkifSegment.Size} bytes, got {source.Length}", nameof(source));
        return new(BinaryPrimitives.ReadUInt32LittleEndian(source), source[4], source[5]);
    }

    /// <summary>Encodes one 8-byte segment descriptor (padding bytes zeroed).</summary>
    public static void EncodeSegment(BlkifSegment segment, Span<byte> destination)
    {
        if (destination.Length < BlkifSegment.Size)
            throw new ArgumentException($"a segment descriptor needs {BlkifSegment.Size} bytes, got {destination.Length}", nameof(destination));
        BinaryPrimitives.WriteUInt32LittleEndian(destination, segment.GrantRef);
        destination[4] = segment.FirstSector;
        destination[5] = segment.LastSector;
        destination[6] = 0;
        destination[7] = 0;
    }

    /// <summary>Encodes a response into a ring slot. Writes <c>layout.ResponseSize</c> bytes.</summary>
    public static void EncodeResponse(in BlkifResponse response, BlkifLayout layout, Span<byte> destination)
    {
        if (destination.Length < layout.ResponseSize)
            throw new ArgumentException($"a {layout.Protocol} response needs {layout.ResponseSize} bytes, got {destination.Length}", nameof(destination));
        destination[..layout.ResponseSize].Clear();
        BinaryPrimitives.WriteUInt64LittleEndian(destination[layout.ResponseId..], response.Id);
        destination[layout.ResponseOperation] = (byte)response.Operation;
        BinaryPrimitives.WriteInt16LittleEndian(destination[layout.ResponseStatus..], (short)response.Status);
    }

    /// <summary>Decodes a response from a ring slot.</summary>
    public static BlkifResponse DecodeResponse(ReadOnlySpan<byte> source, BlkifLayout layout)
    {
        if (source.Length < layout.ResponseSize)
            throw new ArgumentException($"a {layout.Protocol} response needs {layout.ResponseSize} bytes, got {source.Length}", nameof(source));
        return new(BinaryPrimitives.ReadUInt64LittleEndian(source[layout.ResponseId..]),
            (BlkifOperation)source[layout.ResponseOperation],
            (BlkifStatus)BinaryPrimitives.ReadInt16LittleEndian(source[layout.ResponseStatus..]));
    }
}
