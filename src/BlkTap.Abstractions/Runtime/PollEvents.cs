namespace BlkTap;

/// <summary>Readiness a poll registration waits for, or was reported with (see <see cref="Loop.IEventLoop"/>).</summary>
[Flags]
public enum PollEvents
{
    /// <summary>Nothing.</summary>
    None = 0,
    /// <summary>Data can be read (or the peer closed).</summary>
    Readable = 1,
    /// <summary>Data can be written without blocking (descriptor registrations only).</summary>
    Writable = 2,
    /// <summary>The watched handle was signalled.</summary>
    Signalled = 4,
}
