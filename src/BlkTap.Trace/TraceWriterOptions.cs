namespace BlkTap.Trace;

/// <summary>What <see cref="TraceWriter.Append"/> does when the background writer has fallen behind.</summary>
public enum TraceFullMode
{
    /// <summary>Block the caller until the background writer frees a block: no record is lost, but the tap's event loop stalls at disk speed.</summary>
    Block,
    /// <summary>Drop the new record and count it (<see cref="TraceWriter.DroppedRecords"/>, and the trailer's dropped count): the event loop never waits.</summary>
    DropNewest,
}

/// <summary>Options of a <see cref="TraceWriter"/>. Read once at construction.</summary>
public sealed class TraceWriterOptions
{
    /// <summary>Free-form description stored in the header (at most 64 KiB of UTF-8).</summary>
    public string Description { get; set; } = "";
    /// <summary>Creation time stored in the header; null means now.</summary>
    public DateTimeOffset? CreatedUtc { get; set; }
    /// <summary>Records per block handed to the background writer (default 4096, 192 KiB).</summary>
    public int RecordsPerBlock { get; set; } = 4096;
    /// <summary>Full blocks that may wait for the background writer (default 16). Memory is bounded by (this + 2) blocks.</summary>
    public int MaxQueuedBlocks { get; set; } = 16;
    /// <summary>Behaviour when all <see cref="MaxQueuedBlocks"/> are waiting (default <see cref="TraceFullMode.Block"/>).</summary>
    public TraceFullMode FullMode { get; set; } = TraceFullMode.Block;
    /// <summary>When true, <see cref="TraceWriter.Complete"/> fsyncs a file stream before returning.</summary>
    public bool Durable { get; set; }
}
