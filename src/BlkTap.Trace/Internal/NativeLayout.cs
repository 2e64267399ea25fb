using System.Buffers.Binary;
using System.IO.Hashing;

namespace BlkTap.Trace.Internal;

/// <summary>
/// Byte layout of the native trace format, version 1 (docs/trace-format.md is the normative
/// description; keep the two in step). Everything little-endian. Stateless and thread-safe.
/// </summary>
internal static class NativeLayout
{
    // "BLKTAPTR" / "BLKTAPEN" as little-endian u64 so a byte-wise dump shows the ASCII.
    public static ReadOnlySpan<byte> HeaderMagic => "BLKTAPTR"u8;
    public static ReadOnlySpan<byte> TrailerMagic => "BLKTAPEN"u8;

    public const ushort Version = 1;
    public const int FixedHeaderSize = 40;
    public const int RecordSize = 48;
    public const int TrailerSize = 32;
    public const int MaxDescriptionBytes = 64 * 1024;
    /// <summary>Header flag bit 0: records may carry data hashes (informational).</summary>
    public const ushort HeaderFlagHashes = 1;
    public const ushort KnownHeaderFlags = HeaderFlagHashes;
    public const byte KnownRecordFlags = (byte)(TraceRecordFlags.HasDataHash | TraceRecordFlags.NoCompletion);

    // Header field offsets.
    public const int HVersion = 8, HFlags = 10, HRecordSize = 12, HTrailerSize = 14, HHeaderSize = 16,
        HDescriptionLength = 20, HCreated = 24, HCrc = 32, HReserved = 36;

    // Record field offsets.
    public const int RSubmit = 0, RComplete = 8, RSector = 16, RHash = 24, RSession = 32, RLength = 36,
        ROperation = 40, RFlags = 41, RStatus = 42, RCrc = 44;

    // Trailer field offsets.
    public const int TCount = 8, TDropped = 16, TCrc = 24, TReserved = 28;

    public static int HeaderSizeFor(int descriptionBytes) => (FixedHeaderSize + descriptionBytes + 7) & ~7;

    /// <summary>Header CRC: CRC-32 (IEEE) over bytes [0, 32) then the description bytes.</summary>
    public static uint HeaderCrc(ReadOnlySpan<byte> fixedHeader, ReadOnlySpan<byte> description)
    {
        var crc = new Crc32();
        crc.Append(fixedHeader[..HCrc]);
        crc.Append(description);
        return crc.GetCurrentHashAsUInt32();
    }

    public static void WriteRecord(Span<byte> dst, in TraceRecord r)
    {
        BinaryPrimitives.WriteUInt64LittleEndian(dst[RSubmit..], r.SubmitNs);
        BinaryPrimitives.WriteUInt64LittleEndian(dst[RComplete..], r.CompleteNs);
        BinaryPrimitives.WriteUInt64LittleEndian(dst[RSector..], r.Sector);
        BinaryPrimitives.WriteUInt64LittleEndian(dst[RHash..], r.DataHash);
        BinaryPrimitives.WriteUInt32LittleEndian(dst[RSession..], r.Session);
        BinaryPrimitives.WriteUInt32LittleEndian(dst[RLength..], r.Length);
        dst[ROperation] = (byte)r.Operation;
        dst[RFlags] = (byte)r.Flags;
        BinaryPrimitives.WriteInt16LittleEndian(dst[RStatus..], (short)r.Status);
        BinaryPrimitives.WriteUInt32LittleEndian(dst[RCrc..], Crc32.HashToUInt32(dst[..RCrc]));
    }

    /// <summary>Decodes a record; returns null and a problem text when it is corrupt.</summary>
    public static string? TryReadRecord(ReadOnlySpan<byte> src, out TraceRecord record)
    {
        record = default;
        var crc = BinaryPrimitives.ReadUInt32LittleEndian(src[RCrc..]);
        if (Crc32.HashToUInt32(src[..RCrc]) != crc) return "corrupt record (CRC mismatch)";
        var op = (BlkifOperation)src[ROperation];
        if (!TraceRecord.IsTraceOperation(op)) return $"corrupt record (operation {src[ROperation]} is not a trace operation)";
        var flags = src[RFlags];
        if ((flags & ~KnownRecordFlags) != 0) return $"corrupt record (unknown flags 0x{flags:x2})";
        var status = (BlkifStatus)BinaryPrimitives.ReadInt16LittleEndian(src[RStatus..]);
        if (status is not (BlkifStatus.Okay or BlkifStatus.Error or BlkifStatus.NotSupported))
            return $"corrupt record (status {(short)status} is not a blkif status)";
        var submit = BinaryPrimitives.ReadUInt64LittleEndian(src[RSubmit..]);
        var complete = BinaryPrimitives.ReadUInt64LittleEndian(src[RComplete..]);
        var hasHash = (flags & (byte)TraceRecordFlags.HasDataHash) != 0;
        var completed = (flags & (byte)TraceRecordFlags.NoCompletion) == 0;
        if (!completed && complete != submit) return "corrupt record (no-completion flag set but complete time differs from submit time)";
        var hash = BinaryPrimitives.ReadUInt64LittleEndian(src[RHash..]);
        if (!hasHash && hash != 0) return "corrupt record (data hash without its flag)";
        record = new TraceRecord(submit, complete,
            BinaryPrimitives.ReadUInt32LittleEndian(src[RSession..]), op,
            BinaryPrimitives.ReadUInt64LittleEndian(src[RSector..]),
            BinaryPrimitives.ReadUInt32LittleEndian(src[RLength..]), status,
            hasHash ? hash : null, completed);
        return null;
    }

    public static void WriteTrailer(Span<byte> dst, ulong count, ulong dropped)
    {
        dst[..TrailerSize].Clear();
        TrailerMagic.CopyTo(dst);
        BinaryPrimitives.WriteUInt64LittleEndian(dst[TCount..], count);
        BinaryPrimitives.WriteUInt64LittleEndian(dst[TDropped..], dropped);
        BinaryPrimitives.WriteUInt32LittleEndian(dst[TCrc..], Crc32.HashToUInt32(dst[..TCrc]));
    }
}
