using System.Buffers;
using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Text;
using BlkTap.Trace.Internal;

namespace BlkTap.Trace;

/// <summary>
/// Writes a native trace file (docs/trace-format.md). Built for a tap's event loop at line rate:
/// <see cref="Append"/> only encodes the record into a pooled in-memory block; full blocks go to a
/// dedicated background thread that does the file I/O.
/// </summary>
/// <remarks>
/// <para>Threading: one producer. <see cref="Append"/>, <see cref="Flush"/>, <see cref="Complete"/> and
/// <see cref="Dispose"/> must be called from one thread at a time (the tap's event loop); the
/// counters may be read from any thread.</para>
/// <para>Memory is bounded: at most <see cref="TraceWriterOptions.MaxQueuedBlocks"/> full blocks wait
/// for the disk, plus the one being filled and the one being written. When the queue is full,
/// <see cref="TraceWriterOptions.FullMode"/> decides: <see cref="TraceFullMode.Block"/> (the default)
/// waits, <see cref="TraceFullMode.DropNewest"/> drops the record and counts it; the count is stored
/// in the trailer so a reader knows the trace is incomplete.</para>
/// <para>If the background write fails (disk full, ...), the next <see cref="Append"/>,
/// <see cref="Flush"/> or <see cref="Complete"/> throws an <see cref="IOException"/> wrapping the cause.</para>
/// </remarks>
public sealed class TraceWriter : IDisposable
{
    private readonly Stream _stream;
    private readonly bool _leaveOpen;
    private readonly bool _durable;
    private readonly string _name;
    private readonly int _blockBytes;
    private readonly TraceFullMode _fullMode;
    private readonly BlockingCollection<Block> _queue;
    private readonly Thread _thread;
    private byte[] _current;
    private int _used;
    private long _appended;
    private long _dropped;
    private long _written;
    private volatile Exception? _failure;
    private bool _completed;

    private readonly record struct Block(byte[] Buffer, int Length);

    /// <summary>Creates (or overwrites) the file at <paramref name="path"/> and writes the header.</summary>
    public static TraceWriter Create(string path, TraceWriterOptions? options = null) =>
        new(new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.Read, 1 << 16), options, leaveOpen: false, path);

    /// <summary>Writes a trace to <paramref name="stream"/> (header now, records later, trailer on <see cref="Complete"/>).</summary>
    public TraceWriter(Stream stream, TraceWriterOptions? options = null, bool leaveOpen = false)
        : this(stream, options, leaveOpen, stream is FileStream fs ? fs.Name : "trace stream") { }

    private TraceWriter(Stream stream, TraceWriterOptions? options, bool leaveOpen, string name)
    {
        ArgumentNullException.ThrowIfNull(stream);
        options ??= new TraceWriterOptions();
        if (options.RecordsPerBlock < 1) throw new ArgumentOutOfRangeException(nameof(options), "RecordsPerBlock must be at least 1");
        if (options.MaxQueuedBlocks < 1) throw new ArgumentOutOfRangeException(nameof(options), "MaxQueuedBlocks must be at least 1");
        var description = Encoding.UTF8.GetBytes(options.Description ?? "");
        if (description.Length > NativeLayout.MaxDescriptionBytes)
            throw new ArgumentException($"description is {description.Length} bytes of UTF-8; at most {NativeLayout.MaxDescriptionBytes} allowed", nameof(options));
        _stream = stream;
        _leaveOpen = leaveOpen;
        _durable = options.Durable;
        _name = name;
        _fullMode = options.FullMode;
        _blockBytes = checked(options.RecordsPerBlock * NativeLayout.RecordSize);

        WriteHeader(description, options.CreatedUtc ?? DateTimeOffset.UtcNow);

        _queue = new BlockingCollection<Block>(new ConcurrentQueue<Block>(), options.MaxQueuedBlocks);
        _current = ArrayPool<byte>.Shared.Rent(_blockBytes);
        _thread = new Thread(WriterLoop) { IsBackground = true, Name = "blktap-trace-writer" };
        _thread.Start();
    }

    /// <summary>Records given to <see cref="Append"/> (written or dropped).</summary>
    public long AppendedRecords => Interlocked.Read(ref _appended);
    /// <summary>Records dropped because the background writer was behind (<see cref="TraceFullMode.DropNewest"/> only).</summary>
    public long DroppedRecords => Interlocked.Read(ref _dropped);
    /// <summary>Records already written to the stream by the background thread.</summary>
    public long WrittenRecords => Interlocked.Read(ref _written);

    private void WriteHeader(byte[] description, DateTimeOffset created)
    {
        var size = NativeLayout.HeaderSizeFor(description.Length);
        var header = new byte[size];
        NativeLayout.HeaderMagic.CopyTo(header);
        BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(NativeLayout.HVersion), NativeLayout.Version);
        BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(NativeLayout.HFlags), NativeLayout.HeaderFlagHashes);
        BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(NativeLayout.HRecordSize), NativeLayout.RecordSize);
        BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(NativeLayout.HTrailerSize), NativeLayout.TrailerSize);
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(NativeLayout.HHeaderSize), (uint)size);
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(NativeLayout.HDescriptionLength), (uint)description.Length);
        var unixNs = (created.UtcTicks - DateTimeOffset.UnixEpoch.UtcTicks) * 100;
        BinaryPrimitives.WriteInt64LittleEndian(header.AsSpan(NativeLayout.HCreated), unixNs);
        description.CopyTo(header, NativeLayout.FixedHeaderSize);
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(NativeLayout.HCrc), NativeLayout.HeaderCrc(header, description));
        _stream.Write(header);
    }

    /// <summary>
    /// Adds a record. Never does file I/O on the caller's thread; allocates nothing in the steady
    /// state. May block (<see cref="TraceFullMode.Block"/>) or drop (<see cref="TraceFullMode.DropNewest"/>)
    /// when the background writer is behind.
    /// </summary>
    /// <exception cref="InvalidOperationException">The writer was completed.</exception>
    /// <exception cref="IOException">The background writer failed.</exception>
    public void Append(in TraceRecord record)
    {
        ThrowIfUnusable();
        _appended++;
        if (_used + NativeLayout.RecordSize > _blockBytes && !HandOff(force: false))
        {
            Interlocked.Increment(ref _dropped);
            return;
        }
        NativeLayout.WriteRecord(_current.AsSpan(_used, NativeLayout.RecordSize), record);
        _used += NativeLayout.RecordSize;
    }

    /// <summary>
    /// Hands the partly filled block to the background writer so the records reach the file soon
    /// (call it on a timer). Does no I/O itself; under <see cref="TraceFullMode.DropNewest"/> a full
    /// queue just leaves the records buffered.
    /// </summary>
    public void Flush()
    {
        ThrowIfUnusable();
        if (_used > 0) HandOff(force: false);
    }

    /// <summary>
    /// Hands everything to the background writer, waits for it, writes the trailer and flushes the
    /// stream (fsync when <see cref="TraceWriterOptions.Durable"/>). Idempotent.
    /// </summary>
    /// <exception cref="IOException">The background writer failed; the trace has no trailer and reads as truncated.</exception>
    public void Complete()
    {
        if (_completed) return;
        _completed = true;
        try
        {
            if (_failure == null && _used > 0) HandOff(force: true);
        }
        finally
        {
            _queue.CompleteAdding();
            _thread.Join();
            _queue.Dispose();
            ArrayPool<byte>.Shared.Return(_current);
            _current = [];
        }
        try
        {
            if (_failure != null) throw new IOException($"trace writer failed writing {_name}: {_failure.Message}", _failure);
            Span<byte> trailer = stackalloc byte[NativeLayout.TrailerSize];
            NativeLayout.WriteTrailer(trailer, (ulong)(_appended - _dropped), (ulong)_dropped);
            _stream.Write(trailer);
            if (_durable && _stream is FileStream fs) fs.Flush(flushToDisk: true);
            else _stream.Flush();
        }
        finally
        {
            if (!_leaveOpen) _stream.Dispose();
        }
    }

    /// <summary>Same as <see cref="Complete"/>.</summary>
    public void Dispose() => Complete();

    private void ThrowIfUnusable()
    {
        if (_completed) throw new InvalidOperationException($"trace writer for {_name} is already complete");
        if (_failure is { } f) throw new IOException($"trace writer failed writing {_name}: {f.Message}", f);
    }

    // Returns false when the block could not be handed off (DropNewest and the queue is full).
    private bool HandOff(bool force)
    {
        var block = new Block(_current, _used);
        if (!_queue.TryAdd(block))
        {
            if (_fullMode == TraceFullMode.DropNewest && !force) return false;
            _queue.Add(block);
        }
        _current = ArrayPool<byte>.Shared.Rent(_blockBytes);
        _used = 0;
        return true;
    }

    private void WriterLoop()
    {
        foreach (var block in _queue.GetConsumingEnumerable())
        {
            try
            {
                if (_failure == null)
                {
                    _stream.Write(block.Buffer, 0, block.Length);
                    Interlocked.Add(ref _written, block.Length / NativeLayout.RecordSize);
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or NotSupportedException or ObjectDisposedException)
            {
                _failure = e; // keep draining so a blocked producer wakes up
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(block.Buffer);
            }
        }
    }
}
