namespace BlkTap.Trace.Internal;

/// <summary>Opens text trace files for importers (shared, read-only, large buffer).</summary>
internal static class LineSource
{
    public static StreamReader Open(string path)
    {
        try
        {
            return new StreamReader(new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, 1 << 16),
                System.Text.Encoding.UTF8, detectEncodingFromByteOrderMarks: true, bufferSize: 1 << 16);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw TraceFormatException.ForFile(path, "file not found");
        }
    }
}
