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
/// <remarks>Threading: created on the caller's thread, then touched only on the emulator's scheduler.</remarks>
internal sealed class BlkFrontOperation
{
    private BlkFrontOperation(BlkFrontOperationKind kind, ulong sector, ulong sectorCount)
    {
        Kind = kind;
        Sector = sector;
        SectorCount = sectorCount;
    }

    public BlkFrontOperationKind Kind { get; }
    public ulong Sector { get; }

    /// <summary>Sectors to move (read/write) or discard.</summary>
    public ulong SectorCount { get; }

    public Memory<byte> ReadBuffer { get; private init; }
    public ReadOnlyMemory<byte> WriteData { get; private init; }
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
    }

    public void Fail(Exception error)
    {
        if (Finished) return;
        Finished = true;
        Completion?.TrySetException(error);
        RawCompletion?.TrySetException(error);
    }

    private static TaskCompletionSource<T> NewCompletion<T>() => new(SchedulerSynchronizationContext.CompletionOptions);
}
