namespace BlkTap.Trace;

/// <summary>
/// Reads a trace format into <see cref="TraceRecord"/>s, streaming: records are produced while the
/// file is read, so a trace of millions of lines is never held in memory. Implementations are
/// stateless and thread-safe; each enumeration opens its own reader.
/// </summary>
public interface ITraceImporter
{
    /// <summary>The format this importer reads.</summary>
    TraceFormat Format { get; }

    /// <summary>Streams the records of the file at <paramref name="path"/>. Bad input throws <see cref="TraceFormatException"/> while enumerating.</summary>
    IEnumerable<TraceRecord> Read(string path);

    /// <summary>Streams the records of <paramref name="reader"/>; <paramref name="sourceName"/> names it in errors. The reader is not disposed.</summary>
    IEnumerable<TraceRecord> Read(TextReader reader, string sourceName);
}
