namespace BlkTap.Trace.Internal;

/// <summary>Names of operations and statuses in the text form (docs/trace-format.md).</summary>
internal static class OpNames
{
    public static string Name(BlkifOperation op) => op switch
    {
        BlkifOperation.Read => "read",
        BlkifOperation.Write => "write",
        BlkifOperation.WriteBarrier => "barrier",
        BlkifOperation.FlushDiskCache => "flush",
        BlkifOperation.Discard => "discard",
        _ => throw new ArgumentOutOfRangeException(nameof(op), op, "not a trace operation"),
    };

    public static bool TryParseOp(ReadOnlySpan<char> s, out BlkifOperation op)
    {
        switch (s)
        {
            case "read": op = BlkifOperation.Read; return true;
            case "write": op = BlkifOperation.Write; return true;
            case "barrier": op = BlkifOperation.WriteBarrier; return true;
            case "flush": op = BlkifOperation.FlushDiskCache; return true;
            case "discard": op = BlkifOperation.Discard; return true;
            default: op = default; return false;
        }
    }

    public static string Name(BlkifStatus s) => s switch
    {
        BlkifStatus.Okay => "ok",
        BlkifStatus.Error => "error",
        BlkifStatus.NotSupported => "eopnotsupp",
        _ => throw new ArgumentOutOfRangeException(nameof(s), s, "not a blkif status"),
    };

    public static bool TryParseStatus(ReadOnlySpan<char> s, out BlkifStatus status)
    {
        switch (s)
        {
            case "ok": status = BlkifStatus.Okay; return true;
            case "error": status = BlkifStatus.Error; return true;
            case "eopnotsupp": status = BlkifStatus.NotSupported; return true;
            default: status = default; return false;
        }
    }
}
