namespace BlkTap.Emulator.Internal;

/// <summary>What a <see cref="BlkFrontOperation"/> does.</summary>
internal enum BlkFrontOperationKind
{
    Read,
    Write,
    Flush,
    Discard,
    Raw,
}

/// <summary>
/// One call of the frontend's API: split into one or more ring requests, completed when the last
/// one's response arrives. Status is the first non-OKAY status of its parts.
/// </summary>
/// <remarks>
/// Threading: created on the caller's thread, then touched only on the emulator's scheduler. A batch
/// operation (<see cref="Sink"/> set) is pooled by its <see cref="BlkFront"/> and reused through
/// <see cref="Reuse"/>, on the scheduler only.
/// </remarks>
internal sealed class BlkFrontOperation
{
    private BlkFrontOperation(BlkFrontOperationKind kind, ulong sector, ulong sectorCount)
    {
        Kind = kind;
        Sector = sector;
        SectorCount = sectorCount;
    }

    public BlkFrontOperationKind Kind { get; private set; }
    public ulong Sector { get; private set; }

    /// <summary>Sectors to move (read/write) or discard.</summary>
    public ulong SectorCount { get; private set; }

    public Memory<byte> ReadBuffer { get; private set; }
    public ReadOnlyMemory<byte> WriteData { get; private set; }

    /// <summary>A batch operation's completion (instead of a task); null for the task-based calls.</summary>
    public IBlkFrontOperationSink? Sink { get; private set; }

    /// <summary>The batch caller's token, handed back to <see cref="Sink"/>.</summary>
    public long Token { get; private set; }
    public byte[]? RawRequest { get; private init; }

    public TaskCompletionSource<BlkifStatus>? Completion { get; private init; }
    public TaskCompletionSource<BlkifResponse>? RawCompletion { get; private init; }

    /// <summary>Sectors already placed in ring requests (read/write); for others 0 until submitted.</summary>
    public ulong SubmittedSectors { get; set; }

    /// <summary>Every part is on the ring.</summary>
    public bool FullySubmitted { get; set; }

    public int PartsInFlight { get; set; }

    public BlkifStatus Status { get; private set; } = BlkifStatus.Okay;

    public bool Finished { get; private set; }

    public static BlkFrontOperation ForRead(ulong sector, Memory<byte> buffer) =>
        new(BlkFrontOperationKind.Read, sector, (ulong)buffer.Length / BlkifConstants.SectorSize)
        { ReadBuffer = buffer, Completion = NewCompletion<BlkifStatus>() };

    public static BlkFrontOperation ForWrite(ulong sector, ReadOnlyMemory<byte> data) =>
        new(BlkFrontOperationKind.Write, sector, (ulong)data.Length / BlkifConstants.SectorSize)
        { WriteData = data, Completion = NewCompletion<BlkifStatus>() };

    public static BlkFrontOperation ForFlush() =>
        new(BlkFrontOperationKind.Flush, 0, 0) { Completion = NewCompletion<BlkifStatus>() };

    public static BlkFrontOperation ForDiscard(ulong sector, ulong count) =>
        new(BlkFrontOperationKind.Discard, sector, count) { Completion = NewCompletion<BlkifStatus>() };

    /// <summary>A pooled batch operation, not yet set up (see <see cref="Reuse"/>).</summary>
    public static BlkFrontOperation ForBatch() => new(BlkFrontOperationKind.Flush, 0, 0) { Finished = true };

    /// <summary>Sets a finished batch operation up for its next request. Scheduler only.</summary>
    public void Reuse(IBlkFrontOperationSink sink, BlkFrontOperationKind kind, ulong sector, ulong sectorCount, Memory<byte> buffer, long token)
    {
        Sink = sink;
        Kind = kind;
        Sector = sector;
        SectorCount = sectorCount;
        ReadBuffer = kind == BlkFrontOperationKind.Read ? buffer : default;
        WriteData = kind == BlkFrontOperationKind.Write ? buffer : default;
        Token = token;
        SubmittedSectors = 0;
        FullySubmitted = false;
        PartsInFlight = 0;
        Status = BlkifStatus.Okay;
        Finished = false;
    }

    public static BlkFrontOperation ForRaw(byte[] request) =>
        new(BlkFrontOperationKind.Raw, 0, 0) { RawRequest = request, RawCompletion = NewCompletion<BlkifResponse>() };

    /// <summary>Folds one part's status in: the first failure wins.</summary>
    public void Record(BlkifStatus status)
    {
        if (Status == BlkifStatus.Okay) Status = status;
    }

    public void Complete(BlkifResponse rawResponse)
    {
        if (Finished) return;
        Finished = true;
        Completion?.TrySetResult(Status);
        RawCompletion?.TrySetResult(rawResponse);
        Sink?.OnFinished(this, Status, failed: false);
    }

    public void Fail(Exception error)
    {
        if (Finished) return;
        Finished = true;
        Completion?.TrySetException(error);
        RawCompletion?.TrySetException(error);
        Sink?.OnFinished(this, BlkifStatus.Error, failed: true);
    }

    private static TaskCompletionSource<T> NewCompletion<T>() => new(SchedulerSynchronizationContext.CompletionOptions);
}

/// <summary>Where a batch <see cref="BlkFrontOperation"/> reports that it finished (the frontend's batch path). Scheduler only.</summary>
internal interface IBlkFrontOperationSink
{
    /// <summary>
    /// <paramref name="op"/> finished with <paramref name="status"/>; <paramref name="failed"/> when the frontend failed it
    /// (broken, disconnected) rather than the backend answering it. A failed operation may still be named by other
    /// shadows being failed in the same pass: it must not be reused.
    /// </summary>
    void OnFinished(BlkFrontOperation op, BlkifStatus status, bool failed);
}
