namespace BlkTap.Emulator;

/// <summary>Settings of a <see cref="ReplayDriver"/>. Read once when the replay starts.</summary>
public sealed class ReplayDriverOptions
{
    /// <summary>At most this many requests in flight per frontend (default 32).</summary>
    public int QueueDepth { get; set; } = 32;

    /// <summary>
    /// Null (the default) replays as fast as the queue depth allows; otherwise each request is issued
    /// no earlier than <c>SubmitNs × TimeScale</c> after the start (1 = original timing). Ignored in
    /// deterministic mode, which has no clock: it always replays as fast as it can.
    /// </summary>
    public double? TimeScale { get; set; }

    /// <summary>
    /// Whether every frontend reaches the same disk (a shared <c>mem</c>, an <c>img</c> with a path), so
    /// overlapping requests of different frontends are ordered, or each has its own (then only requests
    /// of one frontend are ordered against each other).
    /// </summary>
    public bool SharedDisk { get; set; } = true;

    /// <summary>
    /// True (the default): without timing (<see cref="TimeScale"/> null, or deterministic mode) the driver issues
    /// through <see cref="BlkFront.SubmitBatch"/>, on the emulator's scheduler, in batches (one ring push and
    /// notification per batch, no task or allocation per request). False: every request through the task-based
    /// calls (<see cref="BlkFront.ReadAsync"/> and the others), as with timing. Both keep the same ordering and give
    /// the observer the same completions.
    /// </summary>
    public bool BatchSubmission { get; set; } = true;
}
