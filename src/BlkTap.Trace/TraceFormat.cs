namespace BlkTap.Trace;

/// <summary>The trace formats BlkTapSim reads.</summary>
public enum TraceFormat
{
    /// <summary>Our own binary format (docs/trace-format.md).</summary>
    Native,
    /// <summary>Our own text export (docs/trace-format.md, "Text form").</summary>
    Text,
    /// <summary>blkparse default text output.</summary>
    Blkparse,
    /// <summary>SNIA MSR Cambridge CSV.</summary>
    Msr,
    /// <summary>fio iolog version 2 or 3.</summary>
    Fio,
}
