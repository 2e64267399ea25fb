using BlkTap.Storage;

namespace BlkTap;

/// <summary>
/// A raw image file or block device: positional reads and writes on an <see cref="IStorageFile"/>, its durable
/// flush (fsync) for FLUSH, its hole punching for discard. The capacity is the file's size at open, rounded down to
/// whole sectors.
/// </summary>
/// <remarks>
/// <para>
/// Threading: the <see cref="IBlockDevice"/> calls block and are safe from any thread, concurrently (positional I/O
/// shares no file position). <see cref="Submit"/> is the loop's way in: it does on the loop only what cannot wait
/// (<see cref="StorageFileExtensions.TryReadFullyNoWait"/>, <see cref="StorageFileExtensions.TryWriteNoWait"/>) and
/// steals the rest for the file's <see cref="StorageLane"/>: reads that miss the page cache, writes the file cannot
/// promise not to block, every flush, FUA write, barrier and discard, and everything that arrives while the lane is
/// busy (so the file's requests keep their order). I/O errors come back as <see cref="BlkifStatus.Error"/>, never as
/// exceptions.
/// </para>
/// <para>
/// On a file that never waits (<see cref="INoWaitStorageFile.NeverWaits"/>: a file in memory) reads and plain writes
/// are gathered instead (<see cref="Batched"/>), one operation per contiguous run, and run at the end of the pass, before
/// the pass's responses are published (sooner when the batch is full), so its requests leave in the pass that took
/// them: in the order they came, one pread or pwrite each, or, with a submission queue (<see cref="IQueuedStorageFile"/>:
/// io_uring, <c>queued</c>), started with one system call (sooner also when a run overlaps a queued write, since the
/// queue runs its operations in any order). Before anything goes to the lane the batch is run and waited for, so a
/// flush, FUA write or barrier covers every write answered before it.
/// </para>
/// <para>
/// A read that allows a file reference (<see cref="TapRequest.FileReferenceAllowed"/>: the NBD export's large reads
/// with no other hook in the chain) is answered with its range of the file when the file lends its handle
/// (<see cref="IReferenceableStorageFile"/>, a file in memory); the export then sends it with sendfile.
/// </para>
/// <para>Owns the file: <see cref="Dispose"/> runs what the lane holds, stops it and closes the file.</para>
/// </remarks>
public sealed partial class FileBlockDevice : IBlockDevice
{
    private readonly IStorageFile _file;
    private readonly INoWaitStorageFile? _nowait;
    private readonly bool _discard;
    private readonly StorageLane _lane;
    private readonly Stack<FileRequestWork> _works = new();
    private readonly int _threads;

    /// <summary>The most threads an in-order batch may run on.</summary>
    public const int MaxThreads = 16;

    /// <summary>Serves <paramref name="file"/> (opened by an <see cref="IStorageProvider"/>); read-only when the file is.</summary>
    /// <param name="file">The image, owned from now on.</param>
    /// <param name="discard">Offer discard (punches holes through <see cref="IStorageFile.PunchHole"/>); never on a read-only file.</param>
    /// <param name="queued">Use the file's submission queue when it has one (<see cref="IQueuedStorageFile"/>); false: never.</param>
    /// <param name="batched">
    /// Without a submission queue, gather each loop pass's reads and writes of a file that never waits
    /// (<see cref="INoWaitStorageFile.NeverWaits"/>) and run them in order at the end of the pass; false: each at once.
    /// </param>
    /// <param name="threads">
    /// How many threads run an in-order batch (1 to <see cref="MaxThreads"/>): the loop's own, and from 2 on helper
    /// threads that take part in each batch on other cores (each spins 0.1 ms for the next batch before it sleeps).
    /// </param>
    /// <param name="mapped">
    /// Map the file when it can be (<see cref="IMappableStorageFile"/>: a file in memory), so pages known to hold data
    /// are read and written by copying instead of a system call each; not with <paramref name="queued"/>.
    /// </param>
    public FileBlockDevice(IStorageFile file, bool discard, bool queued = true, bool batched = true, int threads = 1, bool mapped = false)
    {
        if (mapped && queued) throw new ArgumentException("a mapped file is not served through a submission queue: pass queued false", nameof(mapped));
        _useMap = mapped;
        ArgumentOutOfRangeException.ThrowIfLessThan(threads, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(threads, MaxThreads);
        _threads = threads;
        _useQueue = queued;
        _useBatch = batched;
        ArgumentNullException.ThrowIfNull(file);
        _file = file;
        _nowait = file as INoWaitStorageFile;
        ReadOnly = file.ReadOnly;
        _discard = discard && !ReadOnly;
        SectorCount = (ulong)file.Length / BlkifConstants.SectorSize;
        _lane = new StorageLane(file.Path);
    }

    /// <summary>The worker that takes what would block the loop (for tests and statistics: its <see cref="StorageLane.Pending"/>).</summary>
    public StorageLane Lane => _lane;

    /// <summary>
    /// Loop thread (a terminating hook's <c>OnRequest</c>): serves <paramref name="request"/> and returns
    /// <see cref="HookResult.Respond"/> with its status set when that took no waiting, or <see cref="HookResult.Stolen"/>
    /// when it went to the lane, which answers it later with <see cref="TapRuntime.InjectResponse"/>.
    /// </summary>
    public HookResult Submit(TapRequest request)
    {
        if (!_lane.Busy)
        {
            switch (request.Operation)
            {
                case BlkifOperation.Read:
                    if (request.FileReferenceAllowed && TryReference(request)) return HookResult.Respond;
                    if (TryQueue(request, write: false, out var queued)) return queued;
                    if (TryReadNoWait(request)) return HookResult.Respond;
                    break;
                case BlkifOperation.Write when !request.ForceUnitAccess:
                    if (ReadOnly) { request.Status = BlkifStatus.Error; return HookResult.Respond; }
                    if (TryQueue(request, write: true, out queued)) return queued;
                    if (TryWriteNoWait(request)) return HookResult.Respond;
                    break;
                case BlkifOperation.Write:
                case BlkifOperation.WriteBarrier:
                case BlkifOperation.FlushDiskCache:
                case BlkifOperation.Discard:
                    break;
                default:
                    request.Status = BlkifStatus.NotSupported;
                    return HookResult.Respond;
            }
        }
        // Every queued write completes before the lane sees what comes after it (a flush then covers it); its requests
        // are answered at the end of this pass, as planned when they were queued.
        SubmitQueued();
        var work = _works.Count > 0 ? _works.Pop() : new FileRequestWork(this);
        work.Request = request;
        _lane.Submit(request.Runtime.Loop, work);
        return HookResult.Stolen;
    }

    /// <summary>Loop thread: a work item back from the lane, for reuse.</summary>
    internal void Return(FileRequestWork work) => _works.Push(work);

    /// <summary>
    /// Waits until everything the lane holds has run and the queued batch has completed (before a synchronous flush at
    /// close). The loop thread, or any thread once the loop is stopped; not the lane's.
    /// </summary>
    public void Drain()
    {
        CompleteQueued();
        _lane.Drain();
    }

    private bool TryReadNoWait(TapRequest request) => TryNoWait(request, write: false);

    private bool TryWriteNoWait(TapRequest request)
    {
        if (ReadOnly) { request.Status = BlkifStatus.Error; return true; }
        return TryNoWait(request, write: true);
    }

    /// <summary>
    /// Serves the request on the loop, one system call per contiguous run, unless a run would block: false then (the
    /// request goes to the lane). True when answered (Okay, or Error for a range or I/O error).
    /// </summary>
    private bool TryNoWait(TapRequest request, bool write)
    {
        var nowait = _nowait;
        if (nowait == null) return false;
        var segments = request.Segments;
        try
        {
            for (int i = 0; i < segments.Length;)
            {
                var run = BlockDeviceHook.NextRun(segments, ref i);
                if (!InRange(run.Sector, run.Length)) { request.Status = BlkifStatus.Error; return true; }
                long offset = (long)run.Sector * BlkifConstants.SectorSize;
                // A write run that would block sends the whole request to the lane, which writes it all again: the same
                // bytes at the same offsets, so the runs written here change nothing.
                bool done = write ? nowait.TryWriteNoWait(run.Span, offset) : TryReadRunNoWait(nowait, run.Span, offset);
                if (!done) return false;
            }
        }
        catch (IOException) { request.Status = BlkifStatus.Error; return true; }
        request.Status = BlkifStatus.Okay;
        return true;
    }

    /// <summary>
    /// Answers a read by naming its range of the file (<see cref="TapRequest.ReferenceFile"/>) when the file lends its
    /// handle (in memory) and the request is one run on disk; false: serve it as usual. No data is copied here: the
    /// transport sends the range itself, and past a file shrunk under us it sends zeroes, as a read here would give.
    /// </summary>
    private bool TryReference(TapRequest request)
    {
        if (_file is not IReferenceableStorageFile { ReferenceHandle: { } handle }) return false;
        var segments = request.Segments;
        if (segments.IsEmpty) return false;
        int i = 0;
        var run = BlockDeviceHook.NextRun(segments, ref i);
        if (i != segments.Length) return false;
        if (!InRange(run.Sector, run.Length)) { request.Status = BlkifStatus.Error; return true; }
        request.ReferenceFile(handle, (long)run.Sector * BlkifConstants.SectorSize);
        request.Status = BlkifStatus.Okay;
        return true;
    }

    private static bool TryReadRunNoWait(INoWaitStorageFile nowait, Span<byte> buffer, long offset)
    {
        while (!buffer.IsEmpty)
        {
            if (!nowait.TryReadNoWait(buffer, offset, out int n)) return false;
            if (n <= 0) { buffer.Clear(); break; } // a file shrunk under us reads as zeroes
            buffer = buffer[n..];
            offset += n;
        }
        return true;
    }

    /// <summary>The file's path.</summary>
    public string Path => _file.Path;
    /// <inheritdoc/>
    public ulong SectorCount { get; }
    /// <inheritdoc/>
    public bool ReadOnly { get; }
    /// <inheritdoc/>
    public bool SupportsDiscard => _discard;

    /// <inheritdoc/>
    public BlkifStatus Read(ulong sector, Span<byte> buffer)
    {
        if (!InRange(sector, buffer.Length)) return BlkifStatus.Error;
        try
        {
            _file.ReadFully(buffer, (long)sector * BlkifConstants.SectorSize); // a file shrunk under us reads as zeroes
            return BlkifStatus.Okay;
        }
        catch (IOException) { return BlkifStatus.Error; }
        catch (UnauthorizedAccessException) { return BlkifStatus.Error; }
    }

    /// <inheritdoc/>
    public BlkifStatus Write(ulong sector, ReadOnlySpan<byte> data)
    {
        if (ReadOnly || !InRange(sector, data.Length)) return BlkifStatus.Error;
        try
        {
            _file.Write(data, (long)sector * BlkifConstants.SectorSize);
            return BlkifStatus.Okay;
        }
        catch (IOException) { return BlkifStatus.Error; }
        catch (UnauthorizedAccessException) { return BlkifStatus.Error; }
    }

    /// <inheritdoc/>
    public BlkifStatus Flush()
    {
        if (ReadOnly) return BlkifStatus.Okay;
        try { _file.Flush(); return BlkifStatus.Okay; }
        catch (IOException) { return BlkifStatus.Error; }
        catch (ObjectDisposedException) { return BlkifStatus.Error; }
    }

    /// <inheritdoc/>
    public BlkifStatus Discard(ulong sector, ulong count)
    {
        if (!_discard) return BlkifStatus.NotSupported;
        if (!BlkifValidation.InRange(sector, count, SectorCount)) return BlkifStatus.Error;
        if (count == 0) return BlkifStatus.Okay;
        return _file.PunchHole((long)sector * BlkifConstants.SectorSize, (long)count * BlkifConstants.SectorSize);
    }

    private bool InRange(ulong sector, int bytes) =>
        bytes % BlkifConstants.SectorSize == 0 && BlkifValidation.InRange(sector, (ulong)bytes / BlkifConstants.SectorSize, SectorCount);

    /// <inheritdoc/>
    public void Dispose()
    {
        CompleteQueued();
        _helpers?.Dispose();
        _lane.Dispose();
        _queue?.Dispose();
        _queue = null;
        _file.Dispose();
    }
}
