namespace BlkTap.Trace;

/// <summary>
/// A trace file (native, text or imported) is malformed: bad magic, unknown version, truncation,
/// a corrupt record or a line that does not parse. The message names the file and the byte
/// offset or line number.
/// </summary>
public sealed class TraceFormatException : Exception
{
    /// <summary>Creates the exception for a problem at a byte offset of a binary file.</summary>
    public static TraceFormatException AtOffset(string fileName, long byteOffset, string problem) =>
        new(fileName, byteOffset, null, problem, null);

    /// <summary>Creates the exception for a problem on a line (1-based) of a text file.</summary>
    public static TraceFormatException AtLine(string fileName, long lineNumber, string problem, Exception? inner = null) =>
        new(fileName, null, lineNumber, problem, inner);

    /// <summary>Creates the exception for a problem with a whole file.</summary>
    public static TraceFormatException ForFile(string fileName, string problem) => new(fileName, null, null, problem, null);

    private TraceFormatException(string fileName, long? byteOffset, long? lineNumber, string problem, Exception? inner)
        : base(Compose(fileName, byteOffset, lineNumber, problem), inner)
    {
        FileName = fileName;
        ByteOffset = byteOffset;
        LineNumber = lineNumber;
        Problem = problem;
    }

    /// <summary>The file (or source name) that is malformed.</summary>
    public string FileName { get; }
    /// <summary>Byte offset of the problem in a binary file, if known.</summary>
    public long? ByteOffset { get; }
    /// <summary>1-based line number of the problem in a text file, if known.</summary>
    public long? LineNumber { get; }
    /// <summary>The problem without the location.</summary>
    public string Problem { get; }

    private static string Compose(string file, long? offset, long? line, string problem) =>
        offset is { } o ? $"{file}: at byte offset {o}: {problem}"
        : line is { } l ? $"{file}: line {l}: {problem}"
        : $"{file}: {problem}";
}
