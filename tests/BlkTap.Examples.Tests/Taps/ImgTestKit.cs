using BlkTap.Emulator;
using BlkTap.Testing;
using BlkTap.Testing.Rigs;
using NUnit.Framework;

namespace BlkTap.Examples.Tests.Taps;

/// <summary>What the img tests share: a sparse image, a batch's completions, and the loop's allocation per request.</summary>
internal static class ImgTestKit
{
    /// <summary>A sparse image of <paramref name="bytes"/> bytes named disk.raw in <paramref name="dir"/>.</summary>
    public static string SparseImage(string dir, long bytes)
    {
        var path = Path.Combine(dir, "disk.raw");
        using var f = File.Create(path);
        f.SetLength(bytes);
        return path;
    }

    /// <summary>
    /// The bytes the loop thread allocates per request over 300 random reads or writes of 1 to 8 sectors by each of 16
    /// workers, after a warm-up round (pools, grant maps, the ring's arrays, tiered JIT); a round in which the emulator
    /// still mapped grants is measured again. Returns the bytes per request and the requests of the measured round.
    /// </summary>
    public static async Task<(double BytesPerRequest, long Requests)> LoopBytesPerRequestAsync(EmulatorRig rig, BlkifOperation op)
    {
        const int queueDepth = 16;
        async Task Round(int perWorker)
        {
            var workers = new List<Task>();
            for (int w = 0; w < queueDepth; w++) workers.Add(Worker(rig.Frontends[0], perWorker, op, (ulong)(w + 1)));
            await Task.WhenAll(workers);
        }
        await Round(200);
        long before = 0, after = 0;
        for (int attempt = 0; attempt < 10; attempt++)
        {
            long maps = rig.Emulator.MapOperations;
            before = await LoopProbe.AllocatedBytesAsync(rig.Runtime);
            await Round(300);
            after = await LoopProbe.AllocatedBytesAsync(rig.Runtime);
            if (rig.Emulator.MapOperations == maps) break;
        }
        long requests = 300L * queueDepth;
        TestContext.Out.WriteLine($"loop thread allocated {after - before} bytes for {requests} requests");
        return ((after - before) / (double)requests, requests);
    }

    private static async Task Worker(BlkFront front, int count, BlkifOperation op, ulong rng)
    {
        var buffer = new byte[8 * BlkifConstants.SectorSize];
        for (int i = 0; i < count; i++)
        {
            rng = rng * 6364136223846793005UL + 1442695040888963407UL;
            int sectors = 1 + (int)((rng >> 33) % 8);
            ulong sector = (rng >> 20) % (front.Sectors - 8);
            var data = buffer.AsMemory(0, sectors * BlkifConstants.SectorSize);
            var status = op == BlkifOperation.Write ? await front.WriteAsync(sector, data) : await front.ReadAsync(sector, data);
            Assert.That(status, Is.EqualTo(BlkifStatus.Okay), $"{op} of {sectors} sectors at {sector}");
        }
    }

    /// <summary>The completions of one <see cref="BlkFront.SubmitBatch"/>, by token; thread-safe.</summary>
    public sealed class BatchCollector : IBlkFrontBatchCompletion
    {
        private readonly Dictionary<long, BlkifStatus> _done = new();

        /// <summary>Released once per completion.</summary>
        public readonly SemaphoreSlim Signal = new(0);

        /// <inheritdoc/>
        public void OnCompleted(BlkFront front, long token, BlkifStatus status, bool frontendFailed)
        {
            lock (_done) _done[token] = frontendFailed ? (BlkifStatus)(-99) : status;
            Signal.Release();
        }

        /// <summary>Completions so far.</summary>
        public int Count { get { lock (_done) return _done.Count; } }

        /// <summary>The statuses in token order (-99: the frontend failed the request).</summary>
        public BlkifStatus[] Statuses()
        {
            lock (_done) return _done.OrderBy(kv => kv.Key).Select(kv => kv.Value).ToArray();
        }
    }
}
