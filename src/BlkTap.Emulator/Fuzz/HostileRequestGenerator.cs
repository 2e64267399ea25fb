namespace BlkTap.Emulator;

/// <summary>A generated raw request and the status the protocol says it must get.</summary>
/// <param name="Request">The request to put on the ring.</param>
/// <param name="Expected">The status it must be answered with.</param>
/// <param name="Kind">What kind of request it is (for the report).</param>
public readonly record struct GeneratedRequest(BlkifRequest Request, BlkifStatus Expected, string Kind);

/// <summary>
/// Generates honest and malformed blkif requests for a hostile guest, with the answer each must get:
/// valid reads and writes (OKAY), and every malformed field (too many segments, first &gt; last,
/// last &gt; 7, unknown operations, ranges past the end and overflowing, empty reads, ungranted and
/// read-only references). Deterministic for a seed.
/// </summary>
/// <remarks>Not thread-safe.</remarks>
/// <param name="random">The source of choices.</param>
/// <param name="diskSectors">The disk's size.</param>
/// <param name="sliceStart">First sector valid requests may touch (the hostile guest's own part of a shared disk).</param>
/// <param name="sliceSectors">Sectors valid requests may touch (at least 8).</param>
/// <param name="grantedWritable">A reference granted writable.</param>
/// <param name="grantedReadOnly">A reference granted read-only.</param>
public sealed class HostileRequestGenerator(Random random, ulong diskSectors, ulong sliceStart, ulong sliceSectors, uint grantedWritable, uint grantedReadOnly)
{
    /// <summary>Operation codes no blkif header defines (a static span: no allocation per request).</summary>
    private static ReadOnlySpan<byte> UnknownOperations => [4, 7, 8, 42, 255];

    /// <summary>Produces the next request.</summary>
    public GeneratedRequest Next()
    {
        int kind = random.Next(14);
        ulong sector = sliceStart + (ulong)random.NextInt64((long)Math.Max(1, sliceSectors - 8));
        BlkifRequest r = new() { Operation = BlkifOperation.Read, Sector = sector, SegmentCount = 1 };
        r.Segments[0] = new BlkifSegment(grantedWritable, 0, 7);
        switch (kind)
        {
            case 0:
            case 1:
                r.Operation = random.Next(2) == 0 ? BlkifOperation.Read : BlkifOperation.Write;
                byte first = (byte)random.Next(8);
                r.Segments[0] = new BlkifSegment(grantedWritable, first, (byte)random.Next(first, 8));
                return new(r, BlkifStatus.Okay, "valid");
            case 2:
                r.SegmentCount = random.Next(2) == 0 ? 12 : random.Next(12, 256);
                return new(r, BlkifStatus.Error, "too many segments");
            case 3:
                byte last = (byte)random.Next(0, 7);
                r.Segments[0] = new BlkifSegment(grantedWritable, (byte)(random.Next(2) == 0 ? last + 1 : random.Next(last + 1, 256)), last);
                return new(r, BlkifStatus.Error, "first_sect > last_sect");
            case 4:
                // Boundary values first: last_sect 8 is one past the page.
                r.Segments[0] = new BlkifSegment(grantedWritable, (byte)random.Next(0, 8), (byte)(random.Next(2) == 0 ? 8 : random.Next(8, 256)));
                return new(r, BlkifStatus.Error, "last_sect > 7");
            case 5:
                r.Operation = (BlkifOperation)UnknownOperations[random.Next(UnknownOperations.Length)];
                return new(r, BlkifStatus.NotSupported, "unknown operation");
            case 6:
                r.Sector = diskSectors - (ulong)random.Next(0, 8); // a one-page read from here ends past the last sector
                return new(r, BlkifStatus.Error, "past the end");
            case 7:
                r.Sector = ulong.MaxValue - (ulong)random.Next(0, 16);
                return new(r, BlkifStatus.Error, "sector overflow");
            case 8:
                r.SegmentCount = 0;
                return new(r, BlkifStatus.Error, "read without segments");
            case 9:
                r.Segments[0] = new BlkifSegment(grantedWritable + 10_000 + (uint)random.Next(1000), 0, 7);
                return new(r, BlkifStatus.Error, "ungranted reference");
            case 10:
                r.Operation = BlkifOperation.Read;
                r.Segments[0] = new BlkifSegment(grantedReadOnly, 0, 7);
                return new(r, BlkifStatus.Error, "read into a read-only grant");
            case 11:
                r.Operation = BlkifOperation.Write;
                r.Segments[0] = new BlkifSegment(grantedReadOnly, 0, 7);
                return new(r, BlkifStatus.Okay, "write from a read-only grant");
            case 12:
                r = new BlkifRequest { Operation = BlkifOperation.Discard, Sector = sector, DiscardSectorCount = ulong.MaxValue - (ulong)random.Next(100) };
                return new(r, BlkifStatus.Error, "discard overflow");
            default:
                r = new BlkifRequest { Operation = BlkifOperation.Indirect, IndirectOperation = BlkifOperation.Read, SegmentCount = random.Next(257, 65536), Sector = sector };
                return new(r, BlkifStatus.Error, "indirect with too many segments");
        }
    }
}
