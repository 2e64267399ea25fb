namespace BlkTap.Emulator;

/// <summary>Settings of a <see cref="VerifiedWorkload"/>.</summary>
public sealed class WorkloadOptions
{
    /// <summary>Operations per frontend.</summary>
    public int OperationsPerFrontend { get; set; } = 500;
    /// <summary>Operations in flight per frontend.</summary>
    public int QueueDepth { get; set; } = 8;
    /// <summary>Largest request in 512-byte sectors.</summary>
    public int MaxSectors { get; set; } = 64;
    /// <summary>Percentage of operations that are writes (the rest mostly reads).</summary>
    public int WritePercent { get; set; } = 45;
    /// <summary>Percentage of operations that are flushes.</summary>
    public int FlushPercent { get; set; } = 3;
    /// <summary>Percentage of operations that are discards (when the disk offers them).</summary>
    public int DiscardPercent { get; set; } = 2;
    /// <summary>Seed of the operation mix.</summary>
    public int Seed { get; set; } = 1;
    /// <summary>
    /// Whether all frontends share one disk (each then works in its own slice, so the model stays
    /// exact) or each has its own.
    /// </summary>
    public bool SharedDisk { get; set; } = true;
    /// <summary>
    /// Whether an ERROR answer is expected sometimes (fault injection upstream of the disk): the
    /// operation is counted in <see cref="FrontendResult.Errors"/>, a failed write leaves the model
    /// unchanged, and a failed read is not compared.
    /// </summary>
    public bool TolerateErrors { get; set; }
    /// <summary>
    /// Whether a discarded sector reads back as zeroes (mem, img hole punching) or, like NBD TRIM on
    /// some servers, as anything until it is written again (then its reads are not compared).
    /// </summary>
    public bool DiscardZeroesData { get; set; } = true;
    /// <summary>
    /// With <see cref="SharedDisk"/>: how many equal slices to cut the disk into (default: one per
    /// frontend). More slices than frontends leave the last ones to other users of the disk.
    /// </summary>
    public int? Slices { get; set; }
    /// <summary>Called after each completed operation (progress), from any thread.</summary>
    public Action? Progress { get; set; }
}

/// <summary>What one frontend's workload did.</summary>
public sealed class FrontendResult
{
    /// <summary>The frontend's name.</summary>
    public required string Name { get; init; }
    /// <summary>Operations completed.</summary>
    public long Operations;
    /// <summary>Reads, writes, flushes, discards completed.</summary>
    public long Reads, Writes, Flushes, Discards;
    /// <summary>Bytes read and written.</summary>
    public long BytesRead, BytesWritten;
    /// <summary>Operations answered with a status other than OKAY (where OKAY was expected).</summary>
    public long Errors;
    /// <summary>Reads whose data differed from the model.</summary>
    public long Mismatches;
    /// <summary>The first problems seen, for the report.</summary>
    public List<string> Problems { get; } = new();
}

/// <summary>
/// A random read/write/flush/discard workload from every frontend, checked against a byte-array model
/// of the disk: every read must return exactly what the model says. In-flight operations of one
/// frontend never overlap, so the model is exact under any completion order.
/// </summary>
/// <remarks>Threading: RunAsync is called once; with a deterministic rig it runs on the scheduler.</remarks>
public sealed class VerifiedWorkload(WorkloadOptions options)
{
    /// <summary>Runs the workload on every frontend of <paramref name="rig"/> and returns per-frontend results.</summary>
    public Task<IReadOnlyList<FrontendResult>> RunAsync(EmulatorRig rig) => RunAsync(rig, rig.Frontends);

    /// <summary>Runs the workload on <paramref name="fronts"/> (some of the rig's frontends) only.</summary>
    public async Task<IReadOnlyList<FrontendResult>> RunAsync(EmulatorRig rig, IReadOnlyList<BlkFront> fronts)
    {
        IReadOnlyList<FrontendResult> results = [];
        await rig.Execute(async () => results = await RunInsideAsync(fronts));
        return results;
    }

    /// <summary>
    /// Runs the workload from code that is already inside <see cref="EmulatorRig.Execute"/> (on the
    /// deterministic scheduler, or anywhere in threaded mode).
    /// </summary>
    public async Task<IReadOnlyList<FrontendResult>> RunInsideAsync(IReadOnlyList<BlkFront> fronts)
    {
        var results = fronts.Select(f => new FrontendResult { Name = $"dom{f.Domain.Id}" }).ToArray();
        var tasks = new List<Task>();
        for (int i = 0; i < fronts.Count; i++)
        {
            ulong sectors = fronts[i].Sectors;
            ulong start = 0, length = sectors;
            if (options.SharedDisk)
            {
                length = sectors / (ulong)Math.Max(fronts.Count, options.Slices ?? fronts.Count);
                start = length * (ulong)i;
            }
            tasks.Add(RunOne(fronts[i], start, length, results[i], options.Seed * 31 + i));
        }
        await Task.WhenAll(tasks);
        return results;
    }

    private async Task RunOne(BlkFront front, ulong start, ulong length, FrontendResult result, int seed)
    {
        var rng = new Random(seed);
        if (length == 0) { result.Problems.Add("the disk slice is empty"); return; }
        // The model comes from the shared pool (a fuzz run makes thousands of them) and goes back only once no
        // operation can touch it any more: after every operation completed (an exception leaves it to the GC).
        int modelBytes = checked((int)Math.Min(length, 1UL << 22) * BlkifConstants.SectorSize);
        var pooled = System.Buffers.ArrayPool<byte>.Shared.Rent(modelBytes);
        var model = new DiskModel(pooled.AsMemory(0, modelBytes));
        length = (ulong)modelBytes / BlkifConstants.SectorSize;
        // The slice starts with unknown content (another run may have written it): read it first.
        var initial = await ReadInto(front, start, model.Memory, result);
        if (!initial) { System.Buffers.ArrayPool<byte>.Shared.Return(pooled); return; }
        var inflight = new List<(ulong Start, ulong Count, Task Task)>();
        for (int n = 0; n < options.OperationsPerFrontend; n++)
        {
            int roll = rng.Next(100);
            ulong count = (ulong)rng.Next(1, Math.Min(options.MaxSectors, (int)Math.Min(length, int.MaxValue)) + 1);
            ulong at = (ulong)(rng.NextInt64((long)(length - count + 1)));
            if (roll < options.FlushPercent)
            {
                count = 0;
                at = 0;
            }
            // Wait for every in-flight operation that overlaps (a flush overlaps nothing).
            foreach (var f in inflight.Where(f => count > 0 && at < f.Start + f.Count && f.Start < at + count).ToList())
                await f.Task;
            inflight.RemoveAll(f => f.Task.IsCompleted);
            while (inflight.Count >= options.QueueDepth)
            {
                await Task.WhenAny(inflight.Select(f => f.Task));
                inflight.RemoveAll(f => f.Task.IsCompleted);
            }
            Task op;
            if (roll < options.FlushPercent) op = Flush(front, result);
            else if (roll < options.FlushPercent + options.DiscardPercent && front.SupportsDiscard) op = Discard(front, start, at, count, model, result);
            else if (roll < options.FlushPercent + options.DiscardPercent + options.WritePercent) op = Write(front, start, at, count, model, rng, result);
            else op = Read(front, start, at, count, model, result);
            inflight.Add((at, count, op));
        }
        await Task.WhenAll(inflight.Select(f => f.Task));
        System.Buffers.ArrayPool<byte>.Shared.Return(pooled);
    }

    private async Task<bool> ReadInto(BlkFront front, ulong start, Memory<byte> into, FrontendResult result)
    {
        const int chunk = 256 * 1024;
        for (int at = 0; at < into.Length; at += chunk)
        {
            var part = into.Slice(at, Math.Min(chunk, into.Length - at));
            var s = await front.ReadAsync(start + (ulong)(at / BlkifConstants.SectorSize), part);
            for (int retry = 0; s == BlkifStatus.Error && options.TolerateErrors && retry < 50; retry++)
                s = await front.ReadAsync(start + (ulong)(at / BlkifConstants.SectorSize), part);
            if (s != BlkifStatus.Okay) { Problem(result, $"initial read at sector {start + (ulong)(at / 512)} failed: {s}"); result.Errors++; return false; }
        }
        return true;
    }

    private async Task Read(BlkFront front, ulong start, ulong at, ulong count, DiskModel model, FrontendResult result)
    {
        var buffer = new byte[(int)count * BlkifConstants.SectorSize];
        var s = await front.ReadAsync(start + at, buffer);
        lock (result)
        {
            result.Operations++;
            if (s != BlkifStatus.Okay) { result.Errors++; Problem(result, $"read sector {start + at}+{count}: {s}"); }
            else
            {
                result.Reads++;
                result.BytesRead += buffer.Length;
                var expected = model.Data.Slice((int)at * BlkifConstants.SectorSize, buffer.Length);
                if (model.Unknown != null)
                {
                    // Sectors discarded on a disk whose discard does not zero read back as anything until rewritten.
                    for (int i = 0; i < (int)count; i++)
                        if (model.Unknown[(int)at + i]) buffer.AsSpan(i * BlkifConstants.SectorSize, BlkifConstants.SectorSize).CopyTo(expected.Slice(i * BlkifConstants.SectorSize));
                }
                if (!expected.SequenceEqual(buffer))
                {
                    result.Mismatches++;
                    int first = expected.CommonPrefixLength(buffer);
                    Problem(result, $"read sector {start + at}+{count}: data differs from the model at byte {first} (sector {start + at + (ulong)(first / 512)})");
                }
            }
        }
        options.Progress?.Invoke();
    }

    private async Task Write(BlkFront front, ulong start, ulong at, ulong count, DiskModel model, Random rng, FrontendResult result)
    {
        var data = new byte[(int)count * BlkifConstants.SectorSize];
        FillPattern(data, (ulong)rng.NextInt64());
        var s = await front.WriteAsync(start + at, data);
        lock (result)
        {
            result.Operations++;
            if (s != BlkifStatus.Okay) { result.Errors++; Problem(result, $"write sector {start + at}+{count}: {s}"); }
            else
            {
                result.Writes++;
                result.BytesWritten += data.Length;
                data.CopyTo(model.Data.Slice((int)at * BlkifConstants.SectorSize));
                if (model.Unknown != null) model.Unknown.AsSpan((int)at, (int)count).Clear();
            }
        }
        options.Progress?.Invoke();
    }

    private async Task Flush(BlkFront front, FrontendResult result)
    {
        var s = front.SupportsFlush ? await front.FlushAsync() : BlkifStatus.Okay;
        lock (result)
        {
            result.Operations++;
            result.Flushes++;
            if (s != BlkifStatus.Okay) { result.Errors++; Problem(result, $"flush: {s}"); }
        }
        options.Progress?.Invoke();
    }

    private async Task Discard(BlkFront front, ulong start, ulong at, ulong count, DiskModel model, FrontendResult result)
    {
        var s = await front.DiscardAsync(start + at, count);
        lock (result)
        {
            result.Operations++;
            if (s == BlkifStatus.Okay)
            {
                result.Discards++;
                model.Data.Slice((int)at * BlkifConstants.SectorSize, (int)count * BlkifConstants.SectorSize).Clear();
                if (!options.DiscardZeroesData) (model.Unknown ??= new bool[model.Data.Length / BlkifConstants.SectorSize]).AsSpan((int)at, (int)count).Fill(true);
            }
            else if (s != BlkifStatus.NotSupported) { result.Errors++; Problem(result, $"discard sector {start + at}+{count}: {s}"); }
        }
        options.Progress?.Invoke();
    }

    /// <summary>
    /// Fills <paramref name="data"/> (a multiple of 8 bytes) with a pseudo-random pattern from <paramref name="seed"/>
    /// (splitmix64): every write carries data no other write has, so a misplaced or stale sector shows. Several times
    /// faster than a seeded <see cref="Random.NextBytes(byte[])"/>, which dominated the workload's own cost.
    /// </summary>
    internal static void FillPattern(Span<byte> data, ulong seed)
    {
        var words = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, ulong>(data);
        for (int i = 0; i < words.Length; i++)
        {
            ulong z = seed += 0x9E3779B97F4A7C15UL;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            words[i] = z ^ (z >> 31);
        }
    }

    private static void Problem(FrontendResult r, string what)
    {
        if (r.Problems.Count < 10) r.Problems.Add(what);
    }
}

/// <summary>The model of one frontend's slice: its bytes, and which sectors are undefined after a discard.</summary>
internal sealed class DiskModel(Memory<byte> data)
{
    public Memory<byte> Memory { get; } = data;
    public Span<byte> Data => Memory.Span;
    public bool[]? Unknown;
}
