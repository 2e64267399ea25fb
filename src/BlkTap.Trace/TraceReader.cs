using System.Buffers.Binary;
using System.Text;
using BlkTap.Trace.Internal;

namespace BlkTap.Trace;

/// <summary>
/// Streams the records of a native trace file (docs/trace-format.md). The header is read and
/// checked by the constructor; records are decoded as they are read, in a fixed buffer, so any
/// size of trace streams in constant memory.
/// </summary>
/// <remarks>
/// <para>Threading: not thread-safe; one consumer.</para>
/// <para>Errors: bad magic, unknown version, a corrupt header or record, a trailer that disagrees
/// with the records, or a file that ends without a trailer (a capture that crashed) throw
/// <see cref="TraceFormatException"/> naming the file and the byte offset. With
/// <c>allowTruncated</c> a missing trailer instead ends the stream quietly and sets
/// <see cref="Truncated"/>, so the complete records of a crashed capture can be salvaged.</para>
/// </remarks>
public sealed class TraceReader : IDisposable
{
    private const int BufferSize = NativeLayout.RecordSize * 8192;
    private readonly Stream _stream;
    private readonly bool _leaveOpen;
    private readonly bool _allowTruncated;
    private readonly byte[] _buffer = new byte[BufferSize];
    private int _start;
    private int _end;
    private bool _eof;
    private bool _finished;
    private long _offset; // file offset of _buffer[_start]

    /// <summary>Opens the file at <paramref name="path"/>.</summary>
    /// <exception cref="TraceFormatException">The header is malformed.</exception>
    public static TraceReader Open(string path, bool allowTruncated = false) =>
        new(new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, 1 << 16), path, allowTruncated, leaveOpen: false);

    /// <summary>Streams the records of the file at <paramref name="path"/>, closing it at the end.</summary>
    public static IEnumerable<TraceRecord> ReadFile(string path, bool allowTruncated = false)
    {
        using var reader = Open(path, allowTruncated);
        while (reader.TryRead(out var r)) yield return r;
    }

    /// <summary>Reads a trace from <paramref name="stream"/>; <paramref name="sourceName"/> names it in errors.</summary>
    /// <exception cref="TraceFormatException">The header is malformed.</exception>
    public TraceReader(Stream stream, string sourceName, bool allowTruncated = false, bool leaveOpen = false)
    {
        ArgumentNullException.ThrowIfNull(stream);
        _stream = stream;
        SourceName = sourceName;
        _leaveOpen = leaveOpen;
        _allowTruncated = allowTruncated;
        try
        {
            Header = ReadHeader();
        }
        catch
        {
            if (!leaveOpen) stream.Dispose();
            throw;
        }
    }

    /// <summary>The file or stream name used in errors.</summary>
    public string SourceName { get; }
    /// <summary>The header.</summary>
    public TraceHeader Header { get; }
    /// <summary>Records returned so far.</summary>
    public long RecordsRead { get; private set; }
    /// <summary>After the end: the writer's count of dropped records (from the trailer); null before the end or when truncated.</summary>
    public ulong? DroppedRecords { get; private set; }
    /// <summary>After the end: true when the file had no trailer (only with <c>allowTruncated</c>).</summary>
    public bool Truncated { get; private set; }

    private TraceFormatException Error(long offset, string problem) => TraceFormatException.AtOffset(SourceName, offset, problem);

    private TraceHeader ReadHeader()
    {
        Span<byte> fixedHeader = stackalloc byte[NativeLayout.FixedHeaderSize];
        var got = ReadFully(fixedHeader);
        if (got < 8 || !fixedHeader[..8].SequenceEqual(NativeLayout.HeaderMagic))
            throw Error(0, got < 8 ? $"file too short for a trace header ({got} bytes)" : "bad magic: not a BlkTapSim trace (expected \"BLKTAPTR\")");
        if (got < NativeLayout.FixedHeaderSize) throw Error(got, $"truncated header ({got} of {NativeLayout.FixedHeaderSize} bytes)");
        var version = BinaryPrimitives.ReadUInt16LittleEndian(fixedHeader[NativeLayout.HVersion..]);
        if (version != NativeLayout.Version) throw Error(NativeLayout.HVersion, $"unknown trace format version {version} (this reader knows version {NativeLayout.Version})");
        var flags = BinaryPrimitives.ReadUInt16LittleEndian(fixedHeader[NativeLayout.HFlags..]);
        if ((flags & ~NativeLayout.KnownHeaderFlags) != 0) throw Error(NativeLayout.HFlags, $"unknown header flags 0x{flags:x4}");
        var recordSize = BinaryPrimitives.ReadUInt16LittleEndian(fixedHeader[NativeLayout.HRecordSize..]);
        if (recordSize != NativeLayout.RecordSize) throw Error(NativeLayout.HRecordSize, $"record size {recordSize} is not {NativeLayout.RecordSize} as version 1 requires");
        var trailerSize = BinaryPrimitives.ReadUInt16LittleEndian(fixedHeader[NativeLayout.HTrailerSize..]);
        if (trailerSize != NativeLayout.TrailerSize) throw Error(NativeLayout.HTrailerSize, $"trailer size {trailerSize} is not {NativeLayout.TrailerSize} as version 1 requires");
        var headerSize = BinaryPrimitives.ReadUInt32LittleEndian(fixedHeader[NativeLayout.HHeaderSize..]);
        var descLength = BinaryPrimitives.ReadUInt32LittleEndian(fixedHeader[NativeLayout.HDescriptionLength..]);
        if (descLength > NativeLayout.MaxDescriptionBytes) throw Error(NativeLayout.HDescriptionLength, $"description length {descLength} exceeds {NativeLayout.MaxDescriptionBytes}");
        if (headerSize != NativeLayout.HeaderSizeFor((int)descLength))
            throw Error(NativeLayout.HHeaderSize, $"header size {headerSize} does not match description length {descLength}");
        var rest = new byte[headerSize - NativeLayout.FixedHeaderSize];
        var gotRest = ReadFully(rest);
        if (gotRest < rest.Length) throw Error(NativeLayout.FixedHeaderSize + gotRest, "truncated header (description cut short)");
        var description = rest.AsSpan(0, (int)descLength);
        var crc = BinaryPrimitives.ReadUInt32LittleEndian(fixedHeader[NativeLayout.HCrc..]);
        if (NativeLayout.HeaderCrc(fixedHeader, description) != crc) throw Error(NativeLayout.HCrc, "corrupt header (CRC mismatch)");
        string text;
        try { text = new UTF8Encoding(false, true).GetString(description); }
        catch (DecoderFallbackException) { throw Error(NativeLayout.FixedHeaderSize, "description is not valid UTF-8"); }
        var created = DateTimeOffset.UnixEpoch.AddTicks(BinaryPrimitives.ReadInt64LittleEndian(fixedHeader[NativeLayout.HCreated..]) / 100);
        _offset = headerSize;
        return new TraceHeader(version, flags, recordSize, created, text);
    }

    private int ReadFully(Span<byte> dst)
    {
        var total = 0;
        while (total < dst.Length)
        {
            var n = _stream.Read(dst[total..]);
            if (n == 0) break;
            total += n;
        }
        return total;
    }

    // Ensures at least `need` bytes are buffered unless the stream ends first.
    private void Fill(int need)
    {
        if (_end - _start >= need || _eof) return;
        if (_start > 0)
        {
            Buffer.BlockCopy(_buffer, _start, _buffer, 0, _end - _start);
            _end -= _start;
            _start = 0;
        }
        while (_end - _start < need && !_eof)
        {
            var n = _stream.Read(_buffer, _end, _buffer.Length - _end);
            if (n == 0) _eof = true;
            else _end += n;
        }
    }

    /// <summary>Reads the next record; false at the end of the trace (after the trailer was checked).</summary>
    /// <exception cref="TraceFormatException">A corrupt record or trailer, or truncation.</exception>
    public bool TryRead(out TraceRecord record)
    {
        record = default;
        if (_finished) return false;
        // A record is only decoded when a full trailer could still follow it, so the final
        // TrailerSize bytes are never mistaken for a record.
        Fill(NativeLayout.RecordSize + NativeLayout.TrailerSize);
        var available = _end - _start;
        if (available >= NativeLayout.RecordSize + NativeLayout.TrailerSize)
        {
            var problem = NativeLayout.TryReadRecord(_buffer.AsSpan(_start, NativeLayout.RecordSize), out record);
            if (problem != null) throw Error(_offset, problem + $" (record #{RecordsRead})");
            _start += NativeLayout.RecordSize;
            _offset += NativeLayout.RecordSize;
            RecordsRead++;
            return true;
        }
        _finished = true;
        var tail = _buffer.AsSpan(_start, available);
        if (available == NativeLayout.TrailerSize && tail[..8].SequenceEqual(NativeLayout.TrailerMagic))
        {
            var crc = BinaryPrimitives.ReadUInt32LittleEndian(tail[NativeLayout.TCrc..]);
            if (System.IO.Hashing.Crc32.HashToUInt32(tail[..NativeLayout.TCrc]) != crc) throw Error(_offset, "corrupt trailer (CRC mismatch)");
            var count = BinaryPrimitives.ReadUInt64LittleEndian(tail[NativeLayout.TCount..]);
            if (count != (ulong)RecordsRead) throw Error(_offset, $"trailer says {count} records but the file holds {RecordsRead}");
            DroppedRecords = BinaryPrimitives.ReadUInt64LittleEndian(tail[NativeLayout.TDropped..]);
            return false;
        }
        if (_allowTruncated)
        {
            Truncated = true;
            // Salvage: the tail may still hold whole records written before a crash.
            var whole = available / NativeLayout.RecordSize;
            if (whole > 0 && NativeLayout.TryReadRecord(tail[..NativeLayout.RecordSize], out record) == null)
            {
                _finished = false;
                _start += NativeLayout.RecordSize;
                _offset += NativeLayout.RecordSize;
                RecordsRead++;
                return true;
            }
            record = default;
            return false;
        }
        throw Error(_offset, $"truncated trace: {available} bytes after record #{RecordsRead} where a {NativeLayout.TrailerSize}-byte trailer was expected (capture did not complete?)");
    }

    /// <summary>Streams every remaining record.</summary>
    public IEnumerable<TraceRecord> ReadAll()
    {
        while (TryRead(out var r)) yield return r;
    }

    /// <summary>Closes the stream unless it was opened with leaveOpen.</summary>
    public void Dispose()
    {
        if (!_leaveOpen) _stream.Dispose();
    }
}
